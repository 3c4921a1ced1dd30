"""Keeping the gateway's view of the client's ack fresh while the client sends nothing.

Every frame the client sends carries its ack. When the ack moved and no frame carried it
since, a Ping does, soon after: the gateway then replays little after a reconnect, and
frees its window, even when events keep coming to a client that only listens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

# Wait this long after the ack moved before pinging, so that a burst of events costs one Ping.
ACK_DELAY = 0.5
# At most one Ping for the ack per this many seconds.
ACK_PING_SPACING = 1.0


class AckPinger:
    """Sends `ping()` when `current()` (the ack) is above `sent()` (the last one sent) for
    ACK_DELAY, at most once per ACK_PING_SPACING."""

    def __init__(
        self,
        current: Callable[[], int],
        sent: Callable[[], int],
        ping: Callable[[], Awaitable[None]],
    ) -> None:
        self._current = current
        self._sent = sent
        self._ping = ping
        self._last_ping: float | None = None
        self._task: asyncio.Task[None] | None = None

    def advanced(self) -> None:
        """The ack moved."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._current() > self._sent():
            wait = ACK_DELAY
            if self._last_ping is not None:
                wait = max(wait, self._last_ping + ACK_PING_SPACING - loop.time())
            await asyncio.sleep(wait)
            if self._current() > self._sent():
                self._last_ping = loop.time()
                await self._ping()
