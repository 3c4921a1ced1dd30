"""The push service, the calls service's ClaimCall and the messaging service's fetch for the
fake gateway (client_double.py), for the push client's unit tests.

`PushGateway` is a `FakeGateway` that also serves, each in a task of its own after the
route's capability check (as the real gateway forwards them):

- the push bodies (`FakePush`): registrations kept per device instance, and the relay of
  payloads it signs like the push service (`p1.<body>.<HMAC-SHA256>`, base64url), checked for
  their form, signature, expiry and addressee;
- ClaimCall, on the calls double's records (`claim`): a call still waiting for an answer is
  offered to the claiming session (CallIncoming), an ended one says how it ended;
- FetchMessages and AckMessages, answered by a `FakeMessaging` (messaging_double.py).

Tests may queue errors for a push body (`FakePush.errors`) and for claims
(`PushBackend.claim_errors`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from parley.v1 import push_pb2 as push_pb
from parley_protocol import bodies, framing, validation
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.pb import calls as calls_pb
from parley_protocol.pb import client
from tests.unit.calls_double import client_now_ms
from tests.unit.client_double import FakeBackend, FakeGateway, FakeSession, Harness
from tests.unit.messaging_double import FakeMessaging

PUSH_BODIES = frozenset(
    {
        "register_push_data",
        "unregister_push_data",
        "register_managed_push",
        "unregister_managed_push",
        "relay_push_payload",
    }
)
MESSAGING_BODIES = frozenset({"fetch_messages", "ack_messages"})
SERVED = PUSH_BODIES | MESSAGING_BODIES | {"claim_call"}


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


@dataclass
class Registration:
    """What one device instance registered."""

    push_data: bytes | None = None
    managed: tuple[int, str] | None = None  # provider, token


class FakePush:
    """The push service: registrations by device instance, and payloads it signs and checks."""

    def __init__(self, application_key: str) -> None:
        self.application_key = application_key
        self.key = secrets.token_bytes(32)
        self.registrations: dict[str, Registration] = {}  # instance id: registration
        self.requests: list[tuple[str, str, Message]] = []  # session id, body, message
        self.errors: dict[str, list[ParleyError]] = {}  # body: errors for its next requests

    def of(self, body: str) -> list[Message]:
        return [message for _, name, message in self.requests if name == body]

    def payload(
        self,
        user_id: str,
        content: push_pb.CallPush | push_pb.MessagePush,
        *,
        expires_in_ms: int = 60_000,
        application_key: str | None = None,
        key: bytes | None = None,
    ) -> bytes:
        """A signed payload about `content` for `user_id` (another application's, an expired
        one, or one signed with another key, when asked)."""
        body = push_pb.PushPayloadBody(
            application_key=application_key or self.application_key,
            recipient_user_id=user_id,
            expires_at_ms=client_now_ms() + expires_in_ms,
        )
        if isinstance(content, push_pb.CallPush):
            body.call.CopyFrom(content)
        else:
            body.message.CopyFrom(content)
        raw = body.SerializeToString()
        signature = hmac.new(key or self.key, raw, hashlib.sha256).digest()
        return b"p1." + _b64(raw) + b"." + _b64(signature)

    def handle(self, session: FakeSession, instance_id: str, body: str, message: Any) -> Message:
        """The reply to a push request; ParleyError for an error."""
        assert session.hello is not None
        self.requests.append((session.session_id, body, message))
        queued = self.errors.get(body)
        if queued:
            raise queued.pop(0)
        if body == "relay_push_payload":
            return self._relay(session.hello, message.payload)
        registration = self.registrations.setdefault(instance_id, Registration())
        if body == "register_push_data":
            validation.validate_push_data(message.push_data)
            registration.push_data = message.push_data
        elif body == "unregister_push_data":
            registration.push_data = None
        elif body == "register_managed_push":
            if message.provider == push_pb.PUSH_PROVIDER_UNSPECIFIED or not message.token:
                raise ParleyError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "no provider or token")
            registration.managed = (message.provider, message.token)
        elif body == "unregister_managed_push":
            registration.managed = None
        return push_pb.PushRegistered(
            push_data=registration.push_data is not None,
            managed_provider=registration.managed[0] if registration.managed else 0,
        )

    def _relay(self, hello: client.Hello, payload: bytes) -> Message:
        parts = payload.split(b".")
        try:
            if len(parts) != 3 or parts[0] != b"p1":
                raise ValueError("not p1.<body>.<signature>")
            raw, signature = _unb64(parts[1]), _unb64(parts[2])
            body = push_pb.PushPayloadBody.FromString(raw)
        except Exception as exc:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT, f"not a push payload: {exc}", "payload"
            ) from None
        expected = hmac.new(self.key, raw, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise ParleyError(ErrorCode.ERROR_CODE_INVALID_SIGNATURE, "the payload is forged")
        if body.expires_at_ms <= client_now_ms():
            raise ParleyError(ErrorCode.ERROR_CODE_STALE_TIMESTAMP, "the payload has expired")
        if (body.application_key, body.recipient_user_id) != (hello.application_key, hello.user_id):
            raise ParleyError(
                ErrorCode.ERROR_CODE_PERMISSION_DENIED, "the payload is for someone else"
            )
        relayed = push_pb.PushPayloadRelayed(expires_at_ms=body.expires_at_ms)
        if body.HasField("call"):
            relayed.call.CopyFrom(body.call)
        elif body.HasField("message"):
            relayed.message.CopyFrom(body.message)
        return relayed


@dataclass
class PushBackend(FakeBackend):
    """A `FakeBackend` with a push service, a messaging service's fetch, and the claims made."""

    push_service: FakePush = field(init=False)  # (`push` is FakeBackend's, for events)
    messaging: FakeMessaging = field(init=False)
    claims: list[tuple[str, str]] = field(default_factory=list)  # session id, call id
    claim_errors: list[ParleyError] = field(default_factory=list)  # for the next claims

    def __post_init__(self) -> None:
        super().__post_init__()
        self.push_service = FakePush(self.application_key)
        self.messaging = FakeMessaging()

    def instance_of(self, session: FakeSession) -> str:
        """The device instance whose access token signed `session` in."""
        assert session.hello is not None
        return self.tokens[session.hello.access_token][1]

    def registration(self, client_instance: str) -> Registration:
        return self.push_service.registrations.get(client_instance, Registration())

    async def claim(self, session: FakeSession, request: calls_pb.ClaimCall) -> Message:
        """ClaimCall as the calls service answers it."""
        assert session.hello is not None
        self.claims.append((session.session_id, request.call_id))
        if self.claim_errors:
            raise self.claim_errors.pop(0)
        validation.validate_call_id(request.call_id)
        call = self.calls.calls.get(request.call_id)
        if call is None:
            raise ParleyError(ErrorCode.ERROR_CODE_NOT_FOUND, f"no call {request.call_id}")
        if call.callee_user_id != session.hello.user_id:
            raise ParleyError(ErrorCode.ERROR_CODE_PERMISSION_DENIED, "not a call to you")
        reply = calls_pb.ClaimCallReply(
            call_id=call.call_id, phase=call.phase, end_cause=call.end_cause
        )
        if call.ended or call.answered is not None:
            return reply
        if all(other.session_id != session.session_id for other in call.offered):
            call.offered.append(session)
            incoming = calls_pb.CallIncoming(
                call_id=call.call_id,
                caller_user_id=call.caller.hello.user_id if call.caller.hello else "",
                video=call.video,
                headers=call.headers,
                offer_sdp=call.offer_sdp,
                started_at_ms=client_now_ms(),
            )
            await self.deliver(session, client.Envelope(call_incoming=incoming))
        reply.offered = True
        return reply


class PushGateway(FakeGateway):
    """A fake gateway replica that also forwards push, ClaimCall and message fetches."""

    def __init__(self, backend: PushBackend, gateway_id: str, **options: Any) -> None:
        super().__init__(backend, gateway_id, **options)
        self.push_backend = backend

    async def _handle(self, session: FakeSession, envelope: client.Envelope) -> None:
        if framing.body_name(envelope) not in SERVED:
            await super()._handle(session, envelope)
            return
        task = asyncio.create_task(self._forward(session, envelope))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, session: FakeSession, envelope: client.Envelope) -> None:
        assert session.hello is not None
        body = framing.body_name(envelope)
        message = getattr(envelope, body)
        route = bodies.ROUTES[body]
        backend = self.push_backend
        try:
            mask = bodies.capability_mask(session.hello.capabilities)
            if not bodies.has_capability(mask, route.capability):
                raise ParleyError(
                    ErrorCode.ERROR_CODE_CAPABILITY_NOT_ANNOUNCED,
                    f"{body} needs the {bodies.capability_name(route.capability)} capability",
                    "capabilities",
                )
            if body == "claim_call":
                reply = bodies.envelope_of(await backend.claim(session, message))
            elif body in MESSAGING_BODIES:
                reply = await backend.messaging.request(body, message)
            else:
                answer = backend.push_service.handle(
                    session, backend.instance_of(session), body, message
                )
                reply = bodies.envelope_of(answer)
            reply.reply_to = envelope.seq
        except ParleyError as err:
            reply = framing.error_envelope(err, envelope.seq)
        if not session.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send(session, reply)


class PushHarness(Harness):
    """A `Harness` of push gateways."""

    backend: PushBackend

    @property
    def push(self) -> FakePush:
        return self.backend.push_service

    @property
    def messaging(self) -> FakeMessaging:
        return self.backend.messaging

    def frames(self, body: str) -> list[Message]:
        """What clients sent in `body` frames, on every connection, in order of connection."""
        return [
            getattr(frame, body)
            for gateway in self.gateways
            for session in gateway.sessions
            for frame in session.frames
            if frame.HasField(body)
        ]


@contextlib.asynccontextmanager
async def push_harness(data_dir: Path, gateways: int = 1) -> AsyncIterator[PushHarness]:
    backend = PushBackend()
    started: list[FakeGateway] = [
        await PushGateway(backend, f"gw-{index + 1}").start() for index in range(gateways)
    ]
    h = PushHarness(backend, started, data_dir)
    try:
        yield h
    finally:
        for client_ in h.clients:
            await client_.terminate()
        for gateway in started:
            await gateway.stop()
