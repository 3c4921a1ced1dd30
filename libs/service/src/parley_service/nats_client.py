"""The NATS client of every service: nats-py's, with its writes paced.

nats-py queues each command (PUB, SUB, ACK, ...) and wakes its flusher task, which writes
everything queued in one system call. Under load it wakes on nearly every turn of the
event loop, so a busy service makes a write for every few messages; on loopback a write
costs the sender the receiver's side of TCP too. Here a write comes at least
`write_gap_seconds` (1 ms by default) after the one before: commands queued meanwhile go
together. An idle connection writes at once (its last write is long past), so this adds
nothing to a request at rest and at most the gap to one under load. In bench/push.py the
flusher's writes were about a seventh of the push service's CPU.

One more change: nats-py writes a PING (`flush()`) straight to the socket, ahead of the
commands still queued, so a flush could be answered before a queued SUB reached the
server. Here the PING goes after them, and is written without waiting out the gap.

nats-py internals (its flusher and PING; version pinned, as for the gateway's SubjectMux).
"""

from __future__ import annotations

import asyncio
from typing import Any

from nats.aio.client import PING_PROTO
from nats.aio.client import Client as NATS

WRITE_GAP_SECONDS = 0.001


class PacedNats(NATS):
    def __init__(self, write_gap_seconds: float = WRITE_GAP_SECONDS) -> None:
        super().__init__()
        self._write_gap = write_gap_seconds
        self._last_write = 0.0
        self._ping_queued = False

    async def _send_ping(self, future: asyncio.Future[Any] | None = None) -> None:
        if not self.is_connected:  # as nats-py: lost with the connection, never replayed
            await super()._send_ping(future)
            return
        if future is None:
            future = asyncio.Future()
        self._pongs.append(future)
        self._pending.append(PING_PROTO)
        self._pending_data_size += len(PING_PROTO)
        self._ping_queued = True
        await self._flush_pending()

    async def _flusher(self) -> None:
        """nats-py's flusher, waiting out the gap since the last write before it writes."""
        assert self._transport, "Client.connect must be called first"
        assert self._flush_queue, "Client.connect must be called first"
        loop = asyncio.get_running_loop()
        while True:
            if not self.is_connected or self.is_connecting:
                break
            future: asyncio.Future[Any] = await self._flush_queue.get()
            if not self._ping_queued:
                wait = self._last_write + self._write_gap - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._ping_queued = False
            try:
                if self._pending_data_size > 0:
                    self._transport.writelines(self._pending[:])
                    self._pending = []
                    self._pending_data_size = 0
                    self._last_write = loop.time()
                    await self._transport.drain()  # type: ignore[no-untyped-call]
            except OSError as e:
                await self._error_cb(e)
                await self._process_op_err(e)
                break
            except (asyncio.CancelledError, RuntimeError, AttributeError):
                break
            finally:
                if not future.done():
                    future.set_result(None)
