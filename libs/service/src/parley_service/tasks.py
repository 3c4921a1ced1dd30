"""Stopping a task for sure.

On Python 3.11 `asyncio.wait_for` returns its result instead of raising when a cancellation
arrives just as the awaited future completes (fixed in 3.12), and nats-py waits for every
request's reply with it: a loop that sends requests can swallow the `cancel()` meant to
stop it and go on for ever. `stop()` cancels until the task is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

# How long one cancellation may take to land before it is sent again.
RETRY_SECONDS = 0.1


async def stop(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel `tasks` (None entries are skipped) and wait until every one has ended."""
    pending = {task for task in tasks if task is not None and not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RETRY_SECONDS)
    for ended in tasks:
        if ended is not None and ended.done() and not ended.cancelled():
            with contextlib.suppress(Exception):
                ended.exception()  # retrieved: no "never retrieved" warning
