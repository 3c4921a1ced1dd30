"""Futures the client hands to apps, and settling several with one outcome."""

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


def settle(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    """Settle every waiter still pending: failed with `error`, or done if it is None."""
    for waiter in waiters:
        if waiter.done():
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)
