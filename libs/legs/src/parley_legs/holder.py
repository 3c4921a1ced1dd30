"""The legs a replica holds: each started, then run as a task until it ends; all of them
waited for on a drain, and ended on a stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from parley_legs.leg import Leg
from parley_service.logs import get_logger

log = get_logger("parley.legs.holder")

L = TypeVar("L", bound=Leg[Any])


class LegHolder(Generic[L]):
    """`on_change` runs whenever a leg is taken or let go (a service that serves dials
    only while it has room joins or leaves its queue group there)."""

    def __init__(self, on_change: Callable[[], Awaitable[None]] | None = None) -> None:
        self.legs: dict[str, L] = {}
        self._on_change = on_change
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self.legs)

    def __contains__(self, key: str) -> bool:
        return key in self.legs

    async def hold(
        self, key: str, leg: L, refuse: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Keep `leg`, start it and run it. A leg that cannot start is refused (`refuse`),
        ended and let go, and the error raised."""
        self.legs[key] = leg
        await self._changed()
        try:
            await leg.start()
        except BaseException:
            self.legs.pop(key, None)
            if refuse is not None:
                await refuse()
            await leg.end("failed")
            await self._changed()
            raise
        task = asyncio.get_running_loop().create_task(self._run(key, leg), name=f"leg {key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: str, leg: L) -> None:
        try:
            await leg.run()
        except Exception:
            log.exception("leg_failed", call=leg.call_id, kind=leg.kind)
            await leg.end("failed")
        finally:
            self.legs.pop(key, None)
            await self._changed()

    async def wait_all(self, timeout: float) -> None:
        """Until every leg held now has ended, or `timeout`."""
        if self.legs:
            waits = [leg.done.wait() for leg in self.legs.values()]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), timeout)

    async def end_all(self, outcome: str) -> None:
        """End every leg (telling the calls service) and wait for their tasks."""
        await asyncio.gather(
            *(leg.end(outcome) for leg in list(self.legs.values())), return_exceptions=True
        )
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _changed(self) -> None:
        if self._on_change is not None:
            await self._on_change()
