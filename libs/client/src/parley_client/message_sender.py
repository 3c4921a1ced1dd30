"""Sends the outbox: the messages the app sent, in the order they were queued, at most
MAX_IN_FLIGHT SendMessage requests at a time (the gateway takes a bounded number of requests
per session, and acknowledgements and fetches need some too). Within a conversation (the
same recipients) one message is sent at a time, so the service stores, and recipients get,
a conversation's messages in the order they were sent; conversations go in parallel.

A send that fails for a passing reason (not connected, timed out, service unavailable, rate
limited) leaves the message in the outbox: it is sent again after the next (re)connection,
and while connected after a backoff delay; the same message id each time, which the
messaging service answers from its store. A message still unsent `retry_period` after it was
queued fails with a NETWORK error; one the service refused fails at once with its error.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from parley_client.backoff import backoff_delay
from parley_client.errors import ErrorType, ParleyError
from parley_client.id_batches import retryable
from parley_client.logs import AreaLog
from parley_client.message import Message
from parley_client.outbox import Outbox, Unsent
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import messaging as messaging_pb

MAX_IN_FLIGHT = 8
# Retries while connected: between half and all of RETRY_INITIAL * 2**n, at most RETRY_CAP.
RETRY_INITIAL = 1.0
RETRY_CAP = 60.0
# The outbox is checked for messages past their retry period at least this often.
EXPIRY_CHECK = 60.0

SendRequest = Callable[[Message], Awaitable[messaging_pb.MessageAccepted]]
Accepted = Callable[[Message, messaging_pb.MessageAccepted], Awaitable[None]]
Failed = Callable[[Message, ParleyError], Awaitable[None]]


def passing(error: ParleyError) -> bool:
    """Whether a send that failed so may succeed later (the client not connected counts)."""
    return retryable(error) or error.error_code == ErrorCode.ERROR_CODE_WRONG_STATE


class MessageSender:
    """Sends what `outbox` holds with `send`, and tells `accepted` / `failed` (after the
    message left the outbox)."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        send: SendRequest,
        accepted: Accepted,
        failed: Failed,
        log: AreaLog,
        retry_period: float,
        now: Callable[[], float],
        in_flight: int = MAX_IN_FLIGHT,
        retry_initial: float = RETRY_INITIAL,
        retry_cap: float = RETRY_CAP,
        rng: random.Random | None = None,
    ) -> None:
        self._outbox = outbox
        self._send = send
        self._accepted = accepted
        self._failed = failed
        self._log = log
        self._retry_period = retry_period
        self._now = now
        self._slots = asyncio.Semaphore(in_flight)
        self._retry_initial = retry_initial
        self._retry_cap = retry_cap
        self._rng = rng or random.Random()
        self._queue: deque[str] = deque()  # ids to send, in the order queued
        self._in_flight: set[str] = set()
        # Conversations with a message in flight (or failed and waiting for a retry), and
        # the ids queued behind it, in order.
        self._busy: set[tuple[str, ...]] = set()
        self._held: dict[tuple[str, ...], deque[str]] = {}
        self._deferred: set[str] = set()  # failed for a passing reason: wait for a retry
        self._last_error: dict[str, ParleyError] = {}
        self._attempt = 0
        self._connected = False
        self._closed = False
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pump: asyncio.Task[None] | None = None
        self._retry: asyncio.Task[None] | None = None
        self._expiry: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def queue(self, message: Message) -> None:
        """A message just added to the outbox."""
        self._queue.append(message.message_id)
        self._wake.set()

    def connected(self) -> None:
        """(Re)connected: send everything unsent, oldest first."""
        if self._closed:
            return
        self._connected = True
        self._requeue()
        if self._pump is None:
            self._pump = self._spawn(self._run(), "parley messaging outbox")
        if self._expiry is None:
            self._expiry = self._spawn(self._expire_loop(), "parley messaging expiry")

    def disconnected(self) -> None:
        self._connected = False

    def settled(self, message_id: str) -> None:
        """The service has the message (its MessageSent event came): not to be sent again."""
        unsent = self._outbox.get(message_id)
        self._outbox.remove(message_id)
        self._last_error.pop(message_id, None)
        if message_id in self._deferred:  # its conversation waited for its retry
            self._deferred.discard(message_id)
            if unsent is not None:
                self._release(unsent.message)

    async def close(self) -> None:
        """Stop sending; what is unsent stays in the outbox."""
        self._closed = True
        self._connected = False
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- internals -----------------------------------------------------------------------------

    def _requeue(self) -> None:
        self._deferred.clear()
        self._held.clear()
        self._busy = {
            _conversation(unsent.message)
            for unsent in self._outbox.pending()
            if unsent.message.message_id in self._in_flight
        }
        self._queue = deque(
            unsent.message.message_id
            for unsent in self._outbox.pending()
            if unsent.message.message_id not in self._in_flight
        )
        self._wake.set()

    def _next(self) -> Unsent | None:
        while self._queue:
            message_id = self._queue.popleft()
            if message_id in self._in_flight or message_id in self._deferred:
                continue
            unsent = self._outbox.get(message_id)
            if unsent is None:
                continue
            conversation = _conversation(unsent.message)
            if conversation in self._busy:
                self._held.setdefault(conversation, deque()).append(message_id)
                continue
            return unsent
        return None

    def _release(self, message: Message) -> None:
        """The conversation's message is settled: the next one of it may go."""
        conversation = _conversation(message)
        self._busy.discard(conversation)
        held = self._held.pop(conversation, None)
        if held:
            self._queue.extendleft(reversed(held))
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._connected and self._queue:
                await self._slots.acquire()
                unsent = self._next() if self._connected else None
                if unsent is None:
                    self._slots.release()
                    break
                if self._expired(unsent):
                    self._slots.release()
                    await self._fail(unsent.message, self._network_failure(unsent))
                    continue
                self._in_flight.add(unsent.message.message_id)
                self._busy.add(_conversation(unsent.message))
                self._spawn(self._send_one(unsent.message), "parley messaging send")

    async def _send_one(self, message: Message) -> None:
        message_id = message.message_id
        try:
            reply = await self._send(message)
        except ParleyError as exc:
            self._in_flight.discard(message_id)
            self._slots.release()
            if not await self._send_failed(message_id, exc):
                self._release(message)
            return
        except BaseException:
            self._in_flight.discard(message_id)
            self._slots.release()
            self._release(message)
            raise
        self._in_flight.discard(message_id)
        self._slots.release()
        self._release(message)
        self._attempt = 0
        self._outbox.remove(message_id)
        self._last_error.pop(message_id, None)
        await self._accepted(message, reply)

    async def _send_failed(self, message_id: str, error: ParleyError) -> bool:
        """Fail the message or keep it for a retry; True when it was kept (its conversation
        waits for the retry, so that its order holds)."""
        unsent = self._outbox.get(message_id)
        if unsent is None:
            return False  # settled meanwhile (its MessageSent event came)
        if not passing(error):
            self._log.warning(f"message {message_id} was refused: {error}")
            await self._fail(unsent.message, error)
            return False
        self._last_error[message_id] = error
        if self._expired(unsent):
            await self._fail(unsent.message, self._network_failure(unsent))
            return False
        self._log.info(f"message {message_id} not sent ({error}); kept to send again")
        self._deferred.add(message_id)
        if self._retry is None and not self._closed:
            self._retry = self._spawn(self._retry_later(), "parley messaging retry")
        return True

    async def _retry_later(self) -> None:
        try:
            delay = backoff_delay(self._attempt, self._rng, self._retry_initial, self._retry_cap)
            self._attempt += 1
            await asyncio.sleep(delay)
        finally:
            self._retry = None
        if self._connected:
            if self._deferred:
                self._log.info(f"sending {len(self._deferred)} unsent message(s) again")
            self._requeue()

    async def _expire_loop(self) -> None:
        while True:
            oldest = self._outbox.oldest()
            wait = EXPIRY_CHECK
            if oldest is not None:
                wait = min(wait, max(0.0, oldest.queued_at + self._retry_period - self._now()))
            await asyncio.sleep(wait + 0.001)
            for unsent in self._outbox.pending():
                if not self._expired(unsent):
                    break
                if unsent.message.message_id not in self._in_flight:
                    await self._fail(unsent.message, self._network_failure(unsent))

    def _expired(self, unsent: Unsent) -> bool:
        return self._now() - unsent.queued_at >= self._retry_period

    def _network_failure(self, unsent: Unsent) -> ParleyError:
        last = self._last_error.get(unsent.message.message_id)
        code = (
            last.error_code
            if last is not None and last.type is ErrorType.NETWORK
            else ErrorCode.ERROR_CODE_UNAVAILABLE
        )
        detail = f"; last: {last.message}" if last is not None else ""
        return ParleyError(
            code,
            f"the message could not be sent within {self._retry_period:g} s{detail}",
            ErrorType.NETWORK,
        )

    async def _fail(self, message: Message, error: ParleyError) -> None:
        message_id = message.message_id
        self._outbox.remove(message_id)
        if message_id in self._deferred:  # its conversation waited for it
            self._deferred.discard(message_id)
            self._release(message)
        self._last_error.pop(message_id, None)
        await self._failed(message, error)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error(f"{task.get_name()} failed: {task.exception()!r}")


def _conversation(message: Message) -> tuple[str, ...]:
    """The recipients a message goes to, in a stable order: its conversation."""
    return tuple(sorted(message.recipient_ids))
