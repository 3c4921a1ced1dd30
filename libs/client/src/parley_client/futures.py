"""Futures the client hands to apps, and settling several from one outcome."""

from __future__ import annotations

import asyncio
from typing import Any


def consume_exception(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (a done-callback): apps may ignore the futures we
    hand out, and asyncio would otherwise log "exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


def app_future() -> asyncio.Future[None]:
    """A future for an app to await if it wants to; left unawaited, its failure is not logged."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.add_done_callback(consume_exception)
    return future


def settle_all(waiters: list[asyncio.Future[None]], done: asyncio.Future[None]) -> None:
    """Settle every waiter still pending the way `done` settled."""
    error = None if done.cancelled() else done.exception()
    for waiter in waiters:
        if waiter.done():
            continue
        if done.cancelled():
            waiter.cancel()
        elif error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(None)
