"""The replies to a connection's requests, on one wildcard inbox subscribed once.

Every request made through here (bus requests, JetStream publishes waiting for their
acknowledgement, batched direct gets) names `<inbox>.<n>` as its reply subject, and one
subscription per connection takes every reply and hands it to its waiter: a future (one
reply) or a queue (a stream of replies). A request then costs a counter, a future and a
timer: no SUB and UNSUB, no reply token from the OS's random source, no `wait_for` task
(what nats-py's `request` and `js.publish` spend per call). nats-py subscribes the inbox
again after a reconnect, as it does every subscription.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

# A reply carrying this status says no one listens to the request's subject.
STATUS_HEADER = "Status"
NO_RESPONDERS = "503"

T = TypeVar("T")


class ReplyInbox:
    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._prefix = ""
        self._next = 0
        # Reply token -> its waiter: a future, how its reply is read, and its timeout; or a
        # queue.
        self._one: dict[
            str, tuple[asyncio.Future[Any], Callable[[Msg], Any], asyncio.TimerHandle]
        ] = {}
        self._many: dict[str, asyncio.Queue[Msg]] = {}
        self._started: asyncio.Future[None] | None = None

    @classmethod
    async def of(cls, nc: NATS) -> ReplyInbox:
        """The inbox of this connection, subscribed."""
        inbox = _inboxes.get(nc)
        if inbox is None:
            inbox = _inboxes[nc] = cls(nc)
        if not inbox._prefix:
            await inbox.start()
        return inbox

    @property
    def waiting(self) -> int:
        """Requests whose replies are still awaited."""
        return len(self._one) + len(self._many)

    async def start(self) -> None:
        """Subscribe once; concurrent first requests share the subscribe."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._subscribe())
        try:
            await asyncio.shield(self._started)
        except BaseException:
            if self._started.done():
                self._started = None  # failed: the next request tries again
            raise

    async def _subscribe(self) -> None:
        prefix = self._nc.new_inbox() + "."
        await self._nc.subscribe(prefix + "*", cb=self._on_reply)
        self._prefix = prefix

    def one(self, timeout: float, read: Callable[[Msg], T]) -> tuple[str, asyncio.Future[T]]:
        """A reply subject, and the future of its first reply: what `read` makes of the
        message (or the exception it raises), or nats.errors.TimeoutError once `timeout`
        has passed. A request not sent after all is given up with `forget`."""
        token = self._token()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._one[token] = (future, read, loop.call_later(timeout, self._expire, token))
        return self._prefix + token, future

    def many(self) -> tuple[str, asyncio.Queue[Msg]]:
        """A reply subject and the queue its replies land in, until `forget`."""
        token = self._token()
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._many[token] = queue
        return self._prefix + token, queue

    def forget(self, reply: str) -> None:
        """Replies to `reply` are no longer awaited (later ones are dropped)."""
        token = reply[len(self._prefix) :]
        self._many.pop(token, None)
        waiting = self._one.pop(token, None)
        if waiting is not None:
            waiting[2].cancel()
            waiting[0].cancel()

    def _token(self) -> str:
        if not self._prefix:
            raise RuntimeError("ReplyInbox.start() was not awaited")
        self._next += 1
        return str(self._next)

    async def _on_reply(self, msg: Msg) -> None:
        token = msg.subject[len(self._prefix) :]
        waiting = self._one.pop(token, None)
        if waiting is not None:
            future, read, timer = waiting
            timer.cancel()
            if not future.done():
                try:
                    future.set_result(read(msg))
                except Exception as exc:
                    future.set_exception(exc)
            return
        queue = self._many.get(token)
        if queue is not None:  # else the request is over (it timed out): dropped
            queue.put_nowait(msg)

    def _expire(self, token: str) -> None:
        waiting = self._one.pop(token, None)
        if waiting is not None and not waiting[0].done():
            waiting[0].set_exception(nats.errors.TimeoutError())


def no_responders(msg: Msg) -> bool:
    """Whether the reply is the server's "no one listens to that subject"."""
    headers = msg.headers
    return headers is not None and headers.get(STATUS_HEADER) == NO_RESPONDERS and not msg.data


_inboxes: weakref.WeakKeyDictionary[NATS, ReplyInbox] = weakref.WeakKeyDictionary()
