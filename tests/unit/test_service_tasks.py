"""Stopping a task that swallows a cancellation (as Python 3.11's wait_for can)."""

from __future__ import annotations

import asyncio

from parley_service import tasks


async def test_a_task_that_swallows_one_cancellation_is_stopped_all_the_same() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # the first one is lost, as a racing wait_for loses it

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(tasks.stop(task, None), 2)
    assert task.cancelled() and swallowed == 1


async def test_stopping_finished_and_failed_tasks_is_quiet() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    done = asyncio.create_task(asyncio.sleep(0))
    failed = asyncio.create_task(fails())
    await asyncio.sleep(0.01)
    await tasks.stop(done, failed)
    assert done.done() and failed.done()
