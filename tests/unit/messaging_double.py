"""A stand-in for the messaging service behind a `FeatureLink`, for the message client's unit
tests: a `MessageClient` attached to a `FakeMessaging` channel, and a listener that records
what the app heard.

The channel answers SendMessage (storing the message; a retry of the same id is answered
from the store), AckMessages, FetchMessages (from `inbox`, `limit` at a time, without what was
acknowledged), MarkRead and SendTyping. Tests may make it disconnected (every request fails
with a NETWORK error), queue errors for a body (`errors`), or hold a body's replies until
they release a gate (`hold`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import Message as ProtoMessage

from parley_client import (
    Capabilities,
    FeatureLink,
    Message,
    MessageClient,
    MessageClientListener,
    MessageDeliveryInfo,
    MessageFailureInfo,
    MessageReadInfo,
    ParleyClient,
    ParleyError,
    PushPair,
)
from parley_client.features import Connected
from parley_client.logs import ClientLog
from parley_protocol.bodies import body_of, envelope_of
from parley_protocol.pb import client as pb
from parley_protocol.pb import common
from parley_protocol.pb import messaging as messaging_pb
from tests.unit.client_double import APP_KEY


class FakeMessaging:
    """The channel a test MessageClient's link sends on."""

    def __init__(self, user_id: str = "alice") -> None:
        self.user_id = user_id
        self.connected = True
        self.requests: list[tuple[str, ProtoMessage]] = []
        self.traceparents: list[tuple[str, str]] = []  # (body, traceparent) of each frame
        self.errors: dict[str, list[ParleyError]] = {}  # body: errors for its next requests
        self.holds: dict[str, asyncio.Event] = {}  # body: replies wait for the event
        self.stored: dict[str, messaging_pb.Message] = {}
        self.inbox: list[messaging_pb.Message] = []  # what a fetch returns (minus acked)
        self.acked: set[str] = set()
        self.offline: list[messaging_pb.RecipientPush] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def bodies(self) -> list[str]:
        return [body for body, _ in self.requests]

    def of(self, body: str) -> list[ProtoMessage]:
        return [message for name, message in self.requests if name == body]

    def sent_ids(self) -> list[str]:
        return [m.message.message_id for m in self.of("send_message")]  # type: ignore[attr-defined]

    def hold(self, body: str) -> asyncio.Event:
        gate = self.holds[body] = asyncio.Event()
        return gate

    async def send(self, body: str, message: ProtoMessage, traceparent: str = "") -> int:
        self.requests.append((body, message))
        self.traceparents.append((body, traceparent))
        return len(self.requests)

    async def request(
        self,
        body: str,
        message: ProtoMessage,
        timeout: float | None = None,
        traceparent: str = "",
    ) -> pb.Envelope:
        if not self.connected:
            raise ParleyError.network(f"cannot send {body}: not connected")
        self.requests.append((body, message))
        self.traceparents.append((body, traceparent))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            gate = self.holds.get(body)
            if gate is not None:
                await gate.wait()
            if not self.connected:
                raise ParleyError.network(f"{body}: the connection was lost")
            queued = self.errors.get(body)
            if queued:
                raise queued.pop(0)
            return envelope_of(self._answer(message))
        finally:
            self.in_flight -= 1

    def _answer(self, request: ProtoMessage) -> ProtoMessage:
        if isinstance(request, messaging_pb.SendMessage):
            message = self.stored.get(request.message.message_id)
            if message is None:
                message = messaging_pb.Message()
                message.CopyFrom(request.message)
                message.sender_id = self.user_id
                message.timestamp_ms = int(time.time() * 1000)
                self.stored[message.message_id] = message
            return messaging_pb.MessageAccepted(
                message_id=message.message_id,
                timestamp_ms=message.timestamp_ms,
                offline=self.offline,
            )
        if isinstance(request, messaging_pb.AckMessages):
            self.acked.update(request.message_ids)
            return messaging_pb.MessagesAcked(count=len(request.message_ids))
        if isinstance(request, messaging_pb.FetchMessages):
            waiting = [m for m in self.inbox if m.message_id not in self.acked]
            return messaging_pb.MessageBatch(
                messages=waiting[: request.limit], more=len(waiting) > request.limit
            )
        if isinstance(request, messaging_pb.MarkRead | messaging_pb.SendTyping):
            return messaging_pb.MessagesAcked(count=1)
        raise AssertionError(f"unexpected {body_of(request)}")


@dataclass
class Heard(MessageClientListener):
    """What the app heard, in order (its handlers are plain methods and coroutines)."""

    events: list[tuple[str, object]] = field(default_factory=list)
    incoming: list[Message] = field(default_factory=list)
    failed: list[tuple[Message, MessageFailureInfo]] = field(default_factory=list)
    pushes: list[tuple[Message, list[PushPair]]] = field(default_factory=list)

    async def on_incoming_message(self, client: MessageClient, message: Message) -> None:
        await asyncio.sleep(0)
        self.incoming.append(message)
        self.events.append(("incoming", message.message_id))

    def on_message_sent(self, client: MessageClient, message: Message, recipient_id: str) -> None:
        self.events.append(("sent", (message.message_id, recipient_id)))

    def on_message_delivered(self, client: MessageClient, info: MessageDeliveryInfo) -> None:
        self.events.append(("delivered", (info.message_id, info.recipient_id)))

    def on_message_read(self, client: MessageClient, info: MessageReadInfo) -> None:
        self.events.append(("read", (info.message_id, info.reader_id)))

    async def on_message_failed(
        self, client: MessageClient, message: Message, info: MessageFailureInfo
    ) -> None:
        self.failed.append((message, info))
        self.events.append(("failed", (info.message_id, info.recipient_id)))

    def on_should_send_push_data(
        self, client: MessageClient, message: Message, push_pairs: list[PushPair]
    ) -> None:
        self.pushes.append((message, push_pairs))

    def on_typing_changed(self, client: MessageClient, user_id: str, typing: bool) -> None:
        self.events.append(("typing", (user_id, typing)))

    def of(self, kind: str) -> list[object]:
        return [what for name, what in self.events if name == kind]


def connected(resumed: bool = False, reconnected: bool = False) -> Connected:
    return Connected(reconnected=reconnected, resumed=resumed, session_id="s", gateway_id="g")


@dataclass
class Device:
    """A MessageClient of `user_id` on a fake link, with what its app heard."""

    client: MessageClient
    service: FakeMessaging
    heard: Heard
    capabilities: Capabilities

    async def connect(self, resumed: bool = False, reconnected: bool = False) -> None:
        self.service.connected = True
        await self.client.on_connected(connected(resumed, reconnected))

    async def disconnect(self) -> None:
        self.service.connected = False
        await self.client.on_disconnected(ParleyError.network("lost"))

    async def event(self, envelope: pb.Envelope) -> None:
        await self.client.on_frame(envelope)


def device(
    data_dir: Path,
    *,
    user_id: str = "alice",
    service: FakeMessaging | None = None,
    retry_period: float = 3600.0,
    retry_initial: float = 100.0,
    started: Callable[[], bool] = lambda: True,
) -> Device:
    config = (
        ParleyClient.builder()
        .application_key(APP_KEY)
        .user_id(user_id)
        .environment_host("localhost:8080")
        .persistence_dir(data_dir)
        .message_retry_period(retry_period)
        .config
    )
    log = ClientLog(lambda: [])
    service = service or FakeMessaging(user_id)
    capabilities = Capabilities(messaging=True)
    client = MessageClient(
        config=config,
        log=log,
        started=started,
        retry_initial=retry_initial,
        retry_cap=retry_initial * 4,
    )
    client.attached(
        FeatureLink(
            channel=lambda body: service,
            config=config,
            capabilities=lambda: capabilities,
            log=log.area("messaging"),
        )
    )
    heard = Heard()
    client.add_message_client_listener(heard)
    return Device(client, service, heard, capabilities)


def wire_message(
    message_id: str, sender_id: str = "bob", recipients: tuple[str, ...] = ("alice",)
) -> messaging_pb.Message:
    return messaging_pb.Message(
        message_id=message_id,
        sender_id=sender_id,
        recipient_ids=list(recipients),
        text=f"text of {message_id}",
        timestamp_ms=int(time.time() * 1000),
    )


def incoming(message: messaging_pb.Message) -> pb.Envelope:
    return pb.Envelope(message_incoming=messaging_pb.MessageIncoming(message=message))


def push_pair(data: bytes, payload: bytes) -> common.PushPair:
    return common.PushPair(push_data=data, push_payload=payload)
