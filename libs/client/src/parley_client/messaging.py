"""`MessageClient`: instant messages (the guide's MessageClient), a client feature.

`send()` writes the message to the outbox (on disk) and returns; a `MessageSender` sends the
outbox in order, retrying what failed for a passing reason. Incoming messages go to the app
once each (the ids already shown are kept on disk), then are acknowledged (AckMessages,
coalesced): the service re-sends what a device has not acknowledged, so a message already
shown is acknowledged again. On every connection that was not resumed (the first one too) the
history is downloaded: FetchMessages, the unseen messages to the app in order, AckMessages
for the batch, and again while the service says there is more; `fetch_unacknowledged()`
downloads it on request too (a push said a message waits).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from parley_client.call_details import PushPair
from parley_client.config import ClientConfig
from parley_client.errors import ErrorType, ParleyError, terminated
from parley_client.features import Connected, Feature
from parley_client.futures import app_future
from parley_client.id_batches import IdBatches
from parley_client.listeners import ListenerSet
from parley_client.logs import ClientLog
from parley_client.message import (
    Message,
    MessageDeliveryInfo,
    MessageFailureInfo,
    MessageReadInfo,
    WritableMessage,
)
from parley_client.message_sender import RETRY_CAP, RETRY_INITIAL, MessageSender
from parley_client.outbox import Outbox
from parley_client.seen import DELIVERED, INCOMING, READ, SENT, SeenIds
from parley_client.trace_context import TraceParent
from parley_protocol import validation
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.pb import client as pb
from parley_protocol.pb import messaging as messaging_pb

# Messages asked for per FetchMessages.
FETCH_LIMIT = 100
# How long terminate() lets acknowledgements still waiting go out.
ACK_FLUSH_TIMEOUT = 1.0


class MessageClientListener:
    """Events of the message client. Each is a no-op here; override it as a plain method or a
    coroutine. `client` is the MessageClient."""

    def on_incoming_message(
        self, client: MessageClient, message: Message
    ) -> Awaitable[None] | None:
        """A message to this user (once per message, whichever device is on)."""
        return None

    def on_message_sent(
        self, client: MessageClient, message: Message, recipient_id: str
    ) -> Awaitable[None] | None:
        """The service has the message (sent from this device or another of this user): once
        per recipient."""
        return None

    def on_message_delivered(
        self, client: MessageClient, info: MessageDeliveryInfo
    ) -> Awaitable[None] | None:
        """A device of `info.recipient_id` has the message."""
        return None

    def on_message_failed(
        self, client: MessageClient, message: Message, info: MessageFailureInfo
    ) -> Awaitable[None] | None:
        """The message could not be sent (once per recipient): `info.error.type` is NETWORK
        when it could not be sent within the retry period (send a new WritableMessage to
        try again), another type when the service refused it."""
        return None

    def on_should_send_push_data(
        self, client: MessageClient, message: Message, push_pairs: list[PushPair]
    ) -> Awaitable[None] | None:
        """Some recipients have no device online: the app may push to them. `push_pairs`
        (possibly empty) are what their devices registered."""
        return None

    def on_message_read(
        self, client: MessageClient, info: MessageReadInfo
    ) -> Awaitable[None] | None:
        """`info.reader_id` read the message (read receipts)."""
        return None

    def on_typing_changed(
        self, client: MessageClient, user_id: str, typing: bool
    ) -> Awaitable[None] | None:
        """`user_id` is typing to this user, or stopped (only after set_typing_indicators)."""
        return None


def storage_name(application_key: str, user_id: str) -> str:
    """A file name stem for one application's user (user IDs may hold any printable ASCII)."""
    identity = json.dumps([application_key, user_id]).encode("utf-8")
    return base64.urlsafe_b64encode(hashlib.sha256(identity).digest()[:18]).decode("ascii")


class MessageClient(Feature):
    """Sends and receives instant messages: `client.message_client`."""

    name = "messaging"
    bodies = frozenset(
        {"message_incoming", "message_sent", "message_delivered", "message_read", "typing_changed"}
    )

    def __init__(
        self,
        *,
        config: ClientConfig,
        log: ClientLog,
        started: Callable[[], bool],
        now: Callable[[], float] = time.time,
        retry_initial: float = RETRY_INITIAL,
        retry_cap: float = RETRY_CAP,
        rng: random.Random | None = None,
    ) -> None:
        """`started`: whether the client was started (and not terminated) since it was made."""
        self._config = config
        self._started = started
        self._now = now
        self._retry = (retry_initial, retry_cap, rng)
        self._listeners: ListenerSet[MessageClientListener] = ListenerSet(log, "messaging")
        self._emitting = asyncio.Lock()
        self._typing = False
        self._closed = False
        self._store: tuple[Outbox, SeenIds, MessageSender] | None = None
        self._acks: IdBatches | None = None
        self._reads: IdBatches | None = None
        self._history: asyncio.Task[None] | None = None
        self._fetch_again = False  # the running download runs once more when it is done

    # -- the app's side ------------------------------------------------------------------------

    def add_message_client_listener(self, listener: MessageClientListener) -> None:
        self._listeners.add(listener)

    def remove_message_client_listener(self, listener: MessageClientListener) -> None:
        self._listeners.remove(listener)

    def send(self, message: WritableMessage) -> Message:
        """Send `message` to its recipients. It is checked and kept (on disk) before this
        returns, then sent in the background; follow it with on_message_sent (or
        on_message_failed). ParleyError at once, and nothing kept, for bad recipients, text
        or headers, when messaging is not supported or the client was never started."""
        if not isinstance(message, WritableMessage):
            raise TypeError(f"send takes a WritableMessage, not {type(message).__name__}")
        self._check_usable()
        user_id = self._config.user_id or ""
        ready = message.validated(user_id, self._now())
        outbox, _, sender = self._stores()
        outbox.add(ready)
        sender.queue(ready)
        self.link.log.debug(f"message {ready.message_id} queued for {len(ready.recipient_ids)}")
        return ready

    def mark_read(self, message_ids: Iterable[str]) -> asyncio.Future[None]:
        """Tell the senders these messages were read (read receipts). The future settles when
        the service took it; awaiting it is optional."""
        ids = list(message_ids) if not isinstance(message_ids, str) else [message_ids]
        try:
            for index, message_id in enumerate(ids):
                validation.validate_message_id(message_id, f"message_ids[{index}]")
        except ProtocolError as exc:
            raise ParleyError.from_protocol(exc) from None
        self._check_usable()
        return self._read_batches().add(ids)

    def send_typing(self, user_id: str, typing: bool) -> asyncio.Future[None]:
        """Tell `user_id`'s online devices this user is typing to them (or stopped). The
        future settles when the service took it; awaiting it is optional."""
        try:
            validation.validate_user_id(user_id, "user_id")
        except ProtocolError as exc:
            raise ParleyError.from_protocol(exc) from None
        self._check_usable()
        future = app_future()
        request = messaging_pb.SendTyping(recipient_id=user_id, typing=bool(typing))

        async def run() -> None:
            try:
                await self.link.request(request, messaging_pb.MessagesAcked)
            except ParleyError as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(None)

        _keep(asyncio.get_running_loop().create_task(run(), name="parley messaging typing"))
        return future

    def set_typing_indicators(self, enabled: bool) -> None:
        """Hear on_typing_changed (off until enabled)."""
        self._typing = bool(enabled)

    def fetch_unacknowledged(self) -> None:
        """Download what this device has not acknowledged, as after a new session (a push
        said a message waits): on_incoming_message follows for each one not shown yet. A
        download under way runs once more when it is done. In the background; a failure is
        logged, and the next new session downloads again."""
        if self._closed:
            return
        history = self._history
        if history is not None and not history.done():
            self._fetch_again = True
            return
        self._history = asyncio.get_running_loop().create_task(
            self._download(), name="parley messaging history"
        )

    @property
    def unsent(self) -> list[Message]:
        """The messages waiting to be sent (accepted by the service, or failed, they leave)."""
        return [unsent.message for unsent in self._stores()[0].pending()]

    # -- Feature -------------------------------------------------------------------------------

    async def on_frame(self, envelope: pb.Envelope) -> None:
        if self._closed:
            return
        body = envelope.WhichOneof("body")
        if body == "message_incoming":
            await self._incoming(Message.from_proto(envelope.message_incoming.message))
        elif body == "message_sent":
            message = Message.from_proto(envelope.message_sent.message)
            self._stores()[2].settled(message.message_id)
            await self._sent(message)
        elif body == "message_delivered":
            delivered = envelope.message_delivered
            info = MessageDeliveryInfo(
                delivered.message_id, delivered.recipient_id, delivered.timestamp_ms / 1000
            )
            await self._once(
                DELIVERED, f"{info.message_id}/{info.recipient_id}", "on_message_delivered", info
            )
        elif body == "message_read":
            read = envelope.message_read
            read_info = MessageReadInfo(read.message_id, read.reader_id, read.timestamp_ms / 1000)
            await self._once(
                READ, f"{read_info.message_id}/{read_info.reader_id}", "on_message_read", read_info
            )
        elif body == "typing_changed":
            if self._typing:
                changed = envelope.typing_changed
                await self._emit("on_typing_changed", self, changed.sender_id, changed.typing)

    async def on_connected(self, connected: Connected) -> None:
        if self._closed:
            return
        self._stores()[2].connected()
        self._ack_batches().retry()
        if not connected.resumed:
            self._stop_history()
            self._history = asyncio.get_running_loop().create_task(
                self._download(), name="parley messaging history"
            )

    async def on_disconnected(self, reason: ParleyError) -> None:
        if self._store is not None:
            self._store[2].disconnected()
        self._stop_history()

    async def terminate(self) -> None:
        """Stop sending (unsent messages stay in the outbox for the next run) and flush the
        acknowledgements still waiting, briefly. The client calls this when it terminates."""
        if self._closed:
            return
        self._closed = True
        history = self._stop_history()
        if history is not None:
            await asyncio.gather(history, return_exceptions=True)
        if self._store is not None:
            await self._store[2].close()
            self._store[0].close()
            self._store[1].close()
        for batches in (self._acks, self._reads):
            if batches is not None:
                await batches.close(ACK_FLUSH_TIMEOUT)

    # -- internals -----------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise terminated()
        if not self.link.capabilities.messaging:
            raise ParleyError(
                ErrorCode.ERROR_CODE_CAPABILITY_NOT_ANNOUNCED,
                "messaging is not supported: set_support_messaging(True) before start()",
                ErrorType.CAPABILITY,
            )
        if not self._started():
            raise ParleyError(
                ErrorCode.ERROR_CODE_WRONG_STATE,
                "messages can be sent once the client was started",
                ErrorType.OTHER,
            )

    def _stores(self) -> tuple[Outbox, SeenIds, MessageSender]:
        if self._store is None:
            log = self.link.log
            folder = Path(self._config.storage_dir) / "messages"
            stem = storage_name(self._config.application_key or "", self._config.user_id or "")
            outbox = Outbox(folder / f"{stem}.outbox.jsonl", log)
            seen = SeenIds(folder / f"{stem}.seen.jsonl", log, now=self._now)
            initial, cap, rng = self._retry
            sender = MessageSender(
                outbox,
                send=self._send_request,
                accepted=self._accepted,
                failed=self._failed,
                log=log,
                retry_period=self._config.message_retry_period,
                now=self._now,
                retry_initial=initial,
                retry_cap=cap,
                rng=rng,
            )
            self._store = (outbox, seen, sender)
        return self._store

    def _ack_batches(self) -> IdBatches:
        if self._acks is None:

            async def send(ids: list[str]) -> None:
                request = messaging_pb.AckMessages(message_ids=ids)
                await self.link.request(request, messaging_pb.MessagesAcked)

            self._acks = IdBatches("acknowledgement", send, self.link.log, keep_failed=True)
        return self._acks

    def _read_batches(self) -> IdBatches:
        if self._reads is None:

            async def send(ids: list[str]) -> None:
                await self.link.request(
                    messaging_pb.MarkRead(message_ids=ids), messaging_pb.MessagesAcked
                )

            self._reads = IdBatches("read receipt", send, self.link.log, keep_failed=False)
        return self._reads

    async def _send_request(self, message: Message) -> messaging_pb.MessageAccepted:
        """One try at sending `message`: a new span of the message's trace (a new trace
        when it has none)."""
        request = messaging_pb.SendMessage(message=message.to_proto())
        traceparent = str(TraceParent.new(message.trace_id))
        return await self.link.request(
            request, messaging_pb.MessageAccepted, traceparent=traceparent
        )

    async def _accepted(self, message: Message, reply: messaging_pb.MessageAccepted) -> None:
        accepted = message.accepted_at(reply.timestamp_ms)
        await self._sent(accepted)
        if reply.offline:
            pairs = [
                PushPair(pair.push_data, pair.push_payload)
                for recipient in reply.offline
                for pair in recipient.push_pairs
            ]
            await self._emit("on_should_send_push_data", self, accepted, pairs)

    async def _failed(self, message: Message, error: ParleyError) -> None:
        for recipient_id in message.recipient_ids:
            info = MessageFailureInfo(message.message_id, recipient_id, error)
            await self._emit("on_message_failed", self, message, info)

    async def _sent(self, message: Message) -> None:
        _, seen, _ = self._stores()
        if not seen.claim(SENT, message.message_id):
            return
        for recipient_id in message.recipient_ids:
            await self._emit("on_message_sent", self, message, recipient_id)
        seen.record(SENT, message.message_id)

    async def _incoming(self, message: Message, ack: bool = True) -> None:
        if not message.message_id:
            return
        _, seen, _ = self._stores()
        if seen.claim(INCOMING, message.message_id):
            await self._emit("on_incoming_message", self, message)
            seen.record(INCOMING, message.message_id)
        if ack:
            self._ack_batches().add([message.message_id])

    async def _once(self, kind: str, key: str, method: str, info: object) -> None:
        _, seen, _ = self._stores()
        if seen.claim(kind, key):
            await self._emit(method, self, info)
            seen.record(kind, key)

    async def _download(self) -> None:
        """The messages this device has not acknowledged, oldest first, once more if
        `fetch_unacknowledged()` asked for it meanwhile."""
        while True:
            self._fetch_again = False
            await self._download_once()
            if not self._fetch_again:
                return

    async def _download_once(self) -> None:
        """One download: page by page until the service says there is no more; a failure
        stops it (it runs again after the next connection that is not resumed)."""
        log = self.link.log
        fetched = 0
        try:
            while True:
                batch = await self.link.request(
                    messaging_pb.FetchMessages(limit=FETCH_LIMIT), messaging_pb.MessageBatch
                )
                ids = [m.message_id for m in batch.messages if m.message_id]
                for proto in batch.messages:
                    await self._incoming(Message.from_proto(proto), ack=False)
                if ids:
                    await self._ack_batches().add(ids)
                fetched += len(ids)
                if not batch.more or not ids:
                    break
        except ParleyError as exc:
            log.info(f"history download stopped after {fetched} message(s): {exc}")
            return
        if fetched:
            log.info(f"history: {fetched} message(s) fetched")

    def _stop_history(self) -> asyncio.Task[None] | None:
        history, self._history = self._history, None
        if history is not None and history is not asyncio.current_task():
            history.cancel()
        return history

    async def _emit(self, method: str, *args: object) -> None:
        async with self._emitting:  # the app hears one event at a time, in order
            await self._listeners.emit(method, *args)


_TASKS: set[asyncio.Task[None]] = set()


def _keep(task: asyncio.Task[None]) -> None:
    """Hold a fire-and-forget task until it is done."""
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
