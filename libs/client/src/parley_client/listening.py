"""Listening on the active connection: what the app last asked for, the futures waiting for
the gateway to take it, and sending it again on every new connection."""

from __future__ import annotations

import asyncio
from typing import Protocol

from google.protobuf.message import Message

from parley_client.errors import ParleyError
from parley_client.futures import app_future, settle
from parley_client.logs import ClientLog
from parley_protocol.pb import client as pb


class Requester(Protocol):
    """A welcomed connection to send Listen on."""

    async def request(self, body: str, message: Message, timeout: float) -> pb.Envelope: ...


class Listening:
    """The one owner of the listening state; it outlives sessions, so a restarted or
    reconnected client listens again as the app last asked."""

    def __init__(self, log: ClientLog, timeout: float) -> None:
        self._log = log
        self._timeout = timeout
        self._wanted: bool | None = None  # None: the app never asked
        self._waiters: list[asyncio.Future[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def wanted(self) -> bool | None:
        return self._wanted

    def want(self, listening: bool, now: Requester | None) -> asyncio.Future[None]:
        """Record what the app asks for: sent at once on `now` (a live connection), else by
        the next `apply`. The future settles when the gateway took it."""
        self._wanted = listening
        waiter = app_future()
        self._waiters.append(waiter)
        if now is not None:
            task = asyncio.get_running_loop().create_task(self.apply(now))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return waiter

    def refuse(self, listening: bool, error: ParleyError) -> asyncio.Future[None]:
        """Record what the app asks for when it can no longer be sent: failed with `error`."""
        self._wanted = listening
        waiter = app_future()
        waiter.set_exception(error)
        return waiter

    async def apply(self, connection: Requester, held: bool | None = None) -> None:
        """Send Listen until the gateway holds what the app last asked for (on every new
        connection, before it counts as up). `held`, on a new connection, is what its Welcome
        says the gateway took from the Hello: when that is what the app asks for, no Listen
        is sent."""
        applied: bool | None = None
        if held is not None and held is self._wanted:
            applied = held
            settle(self._take_waiters(), None)
        while self._wanted is not None and (applied is not self._wanted or self._waiters):
            wanted = self._wanted
            waiters = self._take_waiters()
            try:
                reply = await connection.request(
                    "listen", pb.Listen(listening=wanted), self._timeout
                )
            except ParleyError as exc:
                self._log.warning("session", f"Listen({wanted}) failed: {exc}")
                settle(waiters, exc)
                return
            except asyncio.CancelledError:
                self._waiters[:0] = waiters  # left for the next connection, or `release`
                raise
            applied = wanted
            if reply.WhichOneof("body") != "listen_accepted":
                self._log.warning("session", f"Listen answered with {reply.WhichOneof('body')}")
            settle(waiters, None)

    async def release(self, error: ParleyError) -> None:
        """Stop sending and fail every waiting future with `error`; what the app asked for
        is kept for the next start."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        settle(self._take_waiters(), error)

    def _take_waiters(self) -> list[asyncio.Future[None]]:
        waiters, self._waiters = self._waiters, []
        return [waiter for waiter in waiters if not waiter.done()]
