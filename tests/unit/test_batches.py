"""Batcher with a fake flush: batching, a result per item, a failed batch, cancelled
requests, and stopping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import pytest
from prometheus_client import Counter, Histogram

from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.batches import Batcher, BatchMetrics

METRICS = BatchMetrics(
    Counter("test_batches_flushes_total", "Test batches.", ["kind", "outcome"], registry=None),
    Histogram("test_batches_size", "Test batch sizes.", ["kind"], registry=None),
    Histogram("test_batches_seconds", "Test flush times.", ["kind"], registry=None),
)


def batcher(
    kind: str,
    flush: Callable[[Sequence[int]], Awaitable[Sequence[int]]],
    max_batch: int,
    window: float = 0.0,
) -> Batcher[int, int]:
    return Batcher("test", kind, flush, METRICS, max_batch, window)


class FakeFlush:
    """Records each batch; holds a batch until `release` is set (when `hold`)."""

    def __init__(self, hold: bool = False, error: Exception | None = None) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.started = asyncio.Event()
        self.error = error

    async def __call__(self, batch: Sequence[int]) -> list[int]:
        self.batches.append(list(batch))
        self.started.set()
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return [item * 10 for item in batch]


async def _writer(flush: FakeFlush, max_batch: int = 100, window: float = 0.0) -> Batcher[int, int]:
    writer: Batcher[int, int] = batcher("test", flush, max_batch, window)
    writer.start()
    return writer


async def test_requests_queued_while_a_commit_runs_make_up_the_next_batch() -> None:
    flush = FakeFlush(hold=True)
    writer = await _writer(flush)
    first = asyncio.create_task(writer.submit(1))
    await flush.started.wait()
    rest = [asyncio.create_task(writer.submit(i)) for i in range(2, 12)]
    await asyncio.sleep(0)
    assert writer.queued == 10
    flush.release.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [i * 10 for i in range(2, 12)]
    assert flush.batches == [[1], list(range(2, 12))]
    assert (writer.batches, writer.items) == (2, 11)
    await writer.stop()


async def test_a_batch_holds_at_most_max_batch_items() -> None:
    flush = FakeFlush(hold=True)
    writer = await _writer(flush, max_batch=3)
    tasks = [asyncio.create_task(writer.submit(i)) for i in range(7)]
    await flush.started.wait()
    flush.release.set()
    assert await asyncio.gather(*tasks) == [i * 10 for i in range(7)]
    assert [len(b) for b in flush.batches] == [3, 3, 1]
    await writer.stop()


async def test_a_window_gathers_requests_that_arrive_during_it() -> None:
    flush = FakeFlush()
    writer = await _writer(flush, window=0.05)
    tasks = [asyncio.create_task(writer.submit(i)) for i in range(5)]
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30, 40]
    assert flush.batches == [[0, 1, 2, 3, 4]]
    await writer.stop()


async def test_a_failed_batch_fails_every_request_of_it_and_the_writer_goes_on() -> None:
    flush = FakeFlush(hold=True, error=RuntimeError("disk on fire"))
    writer = await _writer(flush)
    first = asyncio.create_task(writer.submit(1))
    await flush.started.wait()
    second = [asyncio.create_task(writer.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    flush.release.set()
    with pytest.raises(RuntimeError, match="disk on fire"):
        await first
    for task in second:
        with pytest.raises(RuntimeError, match="disk on fire"):
            await task
    flush.error = None
    assert await writer.submit(4) == 40
    await writer.stop()


async def test_a_flush_giving_the_wrong_number_of_results_fails_the_batch() -> None:
    async def short(batch: Sequence[int]) -> list[int]:
        return []

    writer: Batcher[int, int] = batcher("short", short, 10)
    writer.start()
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        await writer.submit(1)
    await writer.stop()


async def test_a_request_cancelled_before_its_batch_was_taken_is_left_out() -> None:
    flush = FakeFlush(hold=True)
    writer = await _writer(flush)
    first = asyncio.create_task(writer.submit(1))
    await flush.started.wait()
    cancelled = asyncio.create_task(writer.submit(2))
    kept = asyncio.create_task(writer.submit(3))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    flush.release.set()
    assert (await first, await kept) == (10, 30)
    assert flush.batches == [[1], [3]]
    await writer.stop()


async def test_stop_answers_waiting_requests_unavailable_and_refuses_new_ones() -> None:
    flush = FakeFlush(hold=True)
    writer = await _writer(flush)
    writing = asyncio.create_task(writer.submit(1))
    await flush.started.wait()
    waiting = asyncio.create_task(writer.submit(2))
    await asyncio.sleep(0)
    await writer.stop()
    for task in (writing, waiting):
        with pytest.raises(ParleyError) as info:
            await task
        assert info.value.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    with pytest.raises(ParleyError) as info:
        await writer.submit(3)
    assert info.value.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    assert writer.queued == 0


async def test_a_writer_not_started_refuses_and_max_batch_must_be_positive() -> None:
    writer: Batcher[int, int] = batcher("idle", FakeFlush(), 1)
    with pytest.raises(RuntimeError, match="not started"):
        await writer.submit(1)
    with pytest.raises(ValueError, match="max_batch"):
        batcher("bad", FakeFlush(), 0)
