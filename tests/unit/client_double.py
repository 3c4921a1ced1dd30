"""An in-process stand-in for the gateway's public contract, for the client's unit tests.

It speaks the real wire protocol: POST /v1/register and /v1/token in the proto3 JSON
mapping with problem+json errors, and /v1/connect with one protobuf Envelope per binary
frame. Registration rules follow the auth contract (signatures, sequences, timestamps).
Several `FakeGateway`s share one `FakeBackend`, like replicas share auth and presence.

With `FakeBackend.windows` on, the backend also keeps the resume windows: it numbers the
device events it pushes (per session, with gaps, from the start again in a new session),
keeps them with the acks the client sent, and a Hello that asks to resume gets the session
back (its events after resume_from_event replayed right after the Welcome, the connection
that held it closed with 4409) or a new session and the reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import random
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from google.protobuf import json_format

from parley_client import ClientListener, Feature, ParleyClient, ParleyClientBuilder
from parley_client import ParleyError as ClientParleyError
from parley_protocol import bodies, framing, http, signatures, validation
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.pb import auth, client, echo, routing
from tests.unit.calls_double import CALL_BODIES, FakeCalls
from tests.unit.stats_double import FakeStats

APP_KEY = "196087a1-e815-4bc4-8984-60d8d8a43f1d"
APP_SECRET = "oYdgGRXoxEuJhGDY2KQ/HQ=="


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Device:
    instance_id: str
    instance_secret: str
    user_id: str
    revoked: bool = False


@dataclass
class FakeWindow:
    """One session's resume window: its numbered events and the acks its client sent."""

    session_id: str
    user_id: str
    events: list[client.Envelope] = field(default_factory=list)
    acks: list[int] = field(default_factory=list)  # every ack a frame carried, in order
    replayed: list[int] = field(default_factory=list)  # event numbers sent again on resumes
    last_event: int = 0
    connection: FakeSession | None = None  # where its events go now (None: nowhere)

    @property
    def acked(self) -> int:
        return max(self.acks, default=0)

    def numbers(self) -> list[int]:
        return [event.event for event in self.events]


@dataclass
class FakeBackend:
    """What auth, presence and the resume windows hold, shared by every fake replica."""

    application_key: str = APP_KEY
    application_secret: str = APP_SECRET
    token_ttl_ms: int = 900_000
    last_sequence: dict[str, int] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)
    tokens: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # token: user, iid, exp
    register_requests: list[auth.RegisterRequest] = field(default_factory=list)
    token_requests: list[auth.TokenRequest] = field(default_factory=list)
    listening: dict[str, set[str]] = field(default_factory=dict)  # user: session ids
    windows: bool = False  # keep resume windows (else: no numbering, resumes are DISABLED)
    sessions: dict[str, FakeWindow] = field(default_factory=dict)  # session id: window
    event_step: int = 2  # numbers increase with gaps, as the contract allows
    resume_answer: int | None = None  # answer every resume so (EXPIRED, REFUSED, ...)
    resume_reason: str = ""  # and say why
    replay_before: int = 0  # replay this many events at or below resume_from_event as well
    gateways: list[FakeGateway] = field(default_factory=list)  # every replica, as started
    calls: FakeCalls = field(init=False)  # the calls service
    stats: FakeStats = field(default_factory=FakeStats)  # the stats service

    def __post_init__(self) -> None:
        self.calls = FakeCalls(
            self.deliver,
            self.live_sessions,
            lambda user_id: any(d.user_id == user_id for d in self.devices.values()),
            lambda user_id: self.listening.get(user_id, set()),
        )

    def live_sessions(self, user_id: str) -> list[FakeSession]:
        """The signed-in, open connections of `user_id` on every replica."""
        return [
            session
            for gateway in self.gateways
            for session in gateway.live_sessions()
            if session.hello is not None and session.hello.user_id == user_id
        ]

    async def deliver(self, session: FakeSession, envelope: client.Envelope) -> None:
        """A device event to one session: numbered in its window when windows are kept
        (so it follows the session to its current connection), else sent on the connection."""
        if self.windows and session.window is not None:
            await self.push_to(session.window, envelope)
        elif not session.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await session.send(envelope)

    async def push(self, user_id: str, envelope: client.Envelope) -> list[int]:
        """A device event to every session of `user_id` in the window, live or not: numbered,
        kept, and sent where the session is connected. The numbers it got."""
        windows = [w for w in self.sessions.values() if w.user_id == user_id]
        return [await self.push_to(window, envelope) for window in windows]

    async def push_to(self, window: FakeWindow, envelope: client.Envelope) -> int:
        window.last_event += self.event_step
        kept = client.Envelope()
        kept.CopyFrom(envelope)
        kept.event = window.last_event
        window.events.append(kept)
        connection = window.connection
        if connection is not None and not connection.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await connection.send(kept)
        return kept.event

    def register(self, request: auth.RegisterRequest) -> auth.RegisterResponse:
        self.register_requests.append(request)
        validation.validate_application_key(request.application_key)
        validation.validate_user_id(request.user_id)
        if request.application_key != self.application_key:
            raise ParleyError(ErrorCode.ERROR_CODE_UNKNOWN_APPLICATION, "no such application")
        user = request.user_id
        if request.scheme == auth.REGISTRATION_SCHEME_APPLICATION_SECRET:
            if abs(request.timestamp_ms - now_ms()) > 300_000:
                raise ParleyError(ErrorCode.ERROR_CODE_STALE_TIMESTAMP, "timestamp is stale")
            expected = signatures.self_signed_registration(
                user, request.application_key, request.timestamp_ms, self.application_secret
            )
        elif request.scheme == auth.REGISTRATION_SCHEME_APPLICATION_SERVER:
            expected = signatures.registration_signature(
                user, request.application_key, request.sequence, self.application_secret
            )
        else:
            raise ParleyError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "scheme missing", "scheme")
        if not signatures.signatures_equal(expected, request.signature):
            raise ParleyError(ErrorCode.ERROR_CODE_INVALID_SIGNATURE, "signature does not match")
        if request.scheme == auth.REGISTRATION_SCHEME_APPLICATION_SERVER:
            last = self.last_sequence.get(user, 0)
            if request.sequence <= last:
                raise ParleyError(
                    ErrorCode.ERROR_CODE_SEQUENCE_REUSED,
                    f"sequence {request.sequence} is not greater than {last}",
                    "sequence",
                )
            self.last_sequence[user] = request.sequence
        device = Device(str(uuid.uuid4()), secrets.token_urlsafe(24), user)
        self.devices[device.instance_id] = device
        return auth.RegisterResponse(
            credential=auth.DeviceCredential(
                instance_id=device.instance_id, instance_secret=device.instance_secret
            ),
            token=self.issue(device),
        )

    def token(self, request: auth.TokenRequest) -> auth.TokenResponse:
        self.token_requests.append(request)
        device = self.devices.get(request.credential.instance_id)
        if (
            device is None
            or device.revoked
            or device.user_id != request.user_id
            or not signatures.signatures_equal(
                device.instance_secret, request.credential.instance_secret
            )
        ):
            raise ParleyError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, "unknown device credential")
        return auth.TokenResponse(token=self.issue(device))

    def issue(self, device: Device) -> auth.AccessToken:
        token = base64.urlsafe_b64encode(secrets.token_bytes(18)).decode()
        expires = now_ms() + self.token_ttl_ms
        self.tokens[token] = (device.user_id, device.instance_id, expires)
        return auth.AccessToken(token=token, expires_at_ms=expires)

    def check_token(self, token: str, user_id: str) -> int:
        entry = self.tokens.get(token)
        if entry is None or entry[0] != user_id:
            raise ParleyError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, "unknown access token")
        if entry[2] <= now_ms():
            raise ParleyError(ErrorCode.ERROR_CODE_TOKEN_EXPIRED, "access token expired")
        return entry[2]

    def revoke_all(self) -> None:
        for device in self.devices.values():
            device.revoked = True


@dataclass
class FakeSession:
    session_id: str
    ws: web.WebSocketResponse
    hello: client.Hello | None = None
    frames: list[client.Envelope] = field(default_factory=list)
    seq_problems: list[str] = field(default_factory=list)
    server_seq: int = 0
    hello_at: float = 0.0  # time.monotonic() when its Hello arrived
    pongs: int = 0  # WebSocket Pongs the client sent
    window: FakeWindow | None = None
    transport: asyncio.BaseTransport | None = None

    def bodies(self) -> list[str]:
        return [framing.body_name(envelope) for envelope in self.frames]

    async def send(self, envelope: client.Envelope) -> None:
        """Send a copy of `envelope`, numbered with this connection's next seq."""
        self.server_seq += 1
        sent = client.Envelope()
        sent.CopyFrom(envelope)
        sent.seq = self.server_seq
        await self.ws.send_bytes(framing.encode(sent))


class FakeGateway:
    """One gateway replica on 127.0.0.1 (a port the kernel picks)."""

    def __init__(
        self,
        backend: FakeBackend,
        gateway_id: str,
        heartbeat_ms: int = 20_000,
        pings_idle: bool = False,
    ) -> None:
        self.backend = backend
        self.gateway_id = gateway_id
        self.heartbeat_ms = heartbeat_ms
        # Pings (WebSocket) each connection every heartbeat interval while it answers pings,
        # and says so in Welcome.gateway_pings, as the gateway does; False: a gateway
        # predating it, which only answers the client's Ping frames.
        self.pings_idle = pings_idle
        self.sessions: list[FakeSession] = []
        self.http_requests: list[str] = []
        self.connect_headers: list[dict[str, str]] = []  # of each WebSocket upgrade
        self.presence_error: ParleyError | None = None
        self.hello_error: ParleyError | None = None
        # Close code after `hello_error` (default: the contract's close_code_for), or, alone,
        # a close instead of any answer to Hello.
        self.hello_close_code: int | None = None
        self.before_welcome: list[client.Envelope] = []  # sent between Hello and its answer
        self.answer_pings = True
        # Takes the Hello's listening (as the gateway does); False: a gateway predating it,
        # whose Welcome never confirms it.
        self.takes_hello_listening = True
        self.presence_delay = 0.0
        self.welcome_delay = 0.0  # seconds between the Hello and its Welcome (a busy gateway)
        self.echo_error: ParleyError | None = None  # the answer to every EchoRequest
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0
        app = web.Application()
        app.router.add_post("/v1/register", self._register)
        app.router.add_post("/v1/token", self._token)
        app.router.add_get("/v1/connect", self._connect)
        self._app = app
        backend.gateways.append(self)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> FakeGateway:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))  # the kernel picks the port: no race with other tests
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(self._app, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        """Close every socket (going away) and stop listening."""
        for task in list(self._tasks):
            task.cancel()
        for session in list(self.sessions):
            if not session.ws.closed:
                await session.ws.close(code=1001, message=b"gateway stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def kill(self) -> None:
        """Die: every connection breaks without a close frame, and nothing answers any more."""
        for session in self.sessions:
            if session.transport is not None:
                session.transport.abort()
        await self.stop()

    async def drop_all(self, code: int = 1001) -> None:
        for session in list(self.sessions):
            if not session.ws.closed:
                await session.ws.close(code=code)

    async def send_to_all(self, envelope: client.Envelope) -> None:
        """Send to every live session; an EVENT body is a numbered device event when the
        backend keeps windows."""
        numbered = self.backend.windows and framing.body_name(envelope) in bodies.EVENT_BODIES
        for session in list(self.sessions):
            if not session.ws.closed:
                if numbered and session.window is not None:
                    await self.backend.push_to(session.window, envelope)
                else:
                    await self._send(session, envelope)

    def live_sessions(self) -> list[FakeSession]:
        return [session for session in self.sessions if not session.ws.closed]

    # -- HTTP ------------------------------------------------------------------------------

    async def _register(self, request: web.Request) -> web.Response:
        self.http_requests.append("register")
        return await self._json_call(request, auth.RegisterRequest, self.backend.register)

    async def _token(self, request: web.Request) -> web.Response:
        self.http_requests.append("token")
        return await self._json_call(request, auth.TokenRequest, self.backend.token)

    async def _json_call(
        self, request: web.Request, request_type: Any, handler: Any
    ) -> web.Response:
        try:
            try:
                body = json.loads(await request.text())
            except ValueError as exc:
                raise ParleyError(
                    ErrorCode.ERROR_CODE_INVALID_ARGUMENT, f"not JSON: {exc}"
                ) from exc
            try:
                message = json_format.ParseDict(body, request_type())
            except json_format.ParseError as exc:
                raise ParleyError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, str(exc)) from exc
            response = handler(message)
        except ParleyError as err:
            return web.json_response(
                http.problem_body(err),
                status=http.status_for(err.code),
                content_type=http.PROBLEM_CONTENT_TYPE,
            )
        return web.json_response(
            json_format.MessageToDict(response, preserving_proto_field_name=True)
        )

    # -- WebSocket -------------------------------------------------------------------------

    async def _send(self, session: FakeSession, envelope: client.Envelope) -> None:
        await session.send(envelope)

    async def _connect(self, request: web.Request) -> web.WebSocketResponse:
        self.connect_headers.append(dict(request.headers))
        ws = web.WebSocketResponse(max_msg_size=framing.MAX_FRAME_BYTES, autoping=False)
        await ws.prepare(request)
        session = FakeSession(str(uuid.uuid4()), ws, transport=request.transport)
        self.sessions.append(session)
        try:
            await self._serve(session)
        finally:
            window = session.window
            if window is not None and window.connection is session:
                window.connection = None
            if window is None or window.connection is None:  # not resumed elsewhere
                for sessions in self.backend.listening.values():
                    sessions.discard(session.session_id)
        return ws

    async def _serve(self, session: FakeSession) -> None:
        ws = session.ws
        first = await ws.receive(timeout=5)
        if first.type != WSMsgType.BINARY:
            return
        hello_env = framing.decode(first.data)
        session.frames.append(hello_env)
        if framing.body_name(hello_env) != "hello" or hello_env.seq != 1:
            await self._send(
                session,
                framing.error_envelope(
                    ParleyError(
                        ErrorCode.ERROR_CODE_WRONG_STATE, "first frame must be Hello seq 1"
                    ),
                    hello_env.seq,
                ),
            )
            await ws.close(code=1008)
            return
        hello = hello_env.hello
        session.hello = hello
        session.hello_at = time.monotonic()
        for envelope in self.before_welcome:
            pushed = client.Envelope()
            pushed.CopyFrom(envelope)
            await self._send(session, pushed)
        try:
            if self.hello_error is not None:
                raise self.hello_error
            if self.hello_close_code is not None:
                await ws.close(code=self.hello_close_code)
                return
            expires = self.backend.check_token(hello.access_token, hello.user_id)
        except ParleyError as err:
            await self._send(session, framing.error_envelope(err, hello_env.seq))
            await ws.close(code=self.hello_close_code or framing.close_code_for(err.code))
            return
        outcome, reason = await self._resume(session, hello)
        await asyncio.sleep(self.welcome_delay)
        listening = hello.listening and self.takes_hello_listening
        if listening:
            self.backend.listening.setdefault(hello.user_id, set()).add(session.session_id)
        await self._send(
            session,
            client.Envelope(
                reply_to=hello_env.seq,
                welcome=client.Welcome(
                    session_id=session.session_id,
                    gateway_id=self.gateway_id,
                    heartbeat_interval_ms=self.heartbeat_ms,
                    server_time_ms=now_ms(),
                    token_expires_at_ms=expires,
                    resume=outcome,
                    resume_reason=reason,
                    listening=listening,
                    gateway_pings=self.pings_idle,
                ),
            ),
        )
        if self.pings_idle:
            pinger = asyncio.create_task(self._ping(ws))
            self._tasks.add(pinger)
            pinger.add_done_callback(self._tasks.discard)
        if session.window is not None:
            await self._replay(session, hello.resume_from_event, outcome)
        last_seq = hello_env.seq
        async for message in ws:
            if message.type == WSMsgType.PONG:
                session.pongs += 1
            elif message.type == WSMsgType.PING:
                await ws.pong(message.data)
            if message.type != WSMsgType.BINARY:
                continue
            envelope = framing.decode(message.data)
            session.frames.append(envelope)
            if envelope.ack and session.window is not None:
                session.window.acks.append(envelope.ack)
            if envelope.seq <= last_seq:
                session.seq_problems.append(f"seq {envelope.seq} after {last_seq}")
            last_seq = envelope.seq
            await self._handle(session, envelope)

    async def _ping(self, ws: web.WebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self.heartbeat_ms / 1000)
            if self.answer_pings:  # else: gone quiet
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.ping()

    async def _handle(self, session: FakeSession, envelope: client.Envelope) -> None:
        body = framing.body_name(envelope)
        reply = client.Envelope(reply_to=envelope.seq)
        if body == "ping":
            if not self.answer_pings:
                return
            reply.pong.CopyFrom(
                client.Pong(client_time_ms=envelope.ping.client_time_ms, server_time_ms=now_ms())
            )
        elif body == "refresh_token":
            assert session.hello is not None
            try:
                expires = self.backend.check_token(
                    envelope.refresh_token.access_token, session.hello.user_id
                )
            except ParleyError as err:
                reply = framing.error_envelope(err, envelope.seq)
            else:
                reply.token_accepted.token_expires_at_ms = expires
        elif body == "listen":
            assert session.hello is not None
            users = self.backend.listening.setdefault(session.hello.user_id, set())
            if envelope.listen.listening:
                users.add(session.session_id)
            else:
                users.discard(session.session_id)
            reply.listen_accepted.listening = envelope.listen.listening
        elif body == "presence_query":
            await asyncio.sleep(self.presence_delay)
            if self.presence_error is not None:
                reply = framing.error_envelope(self.presence_error, envelope.seq)
            else:
                for user_id in envelope.presence_query.user_ids:
                    devices = len(self.backend.listening.get(user_id, ()))
                    reply.presence_result.users.add(
                        user_id=user_id, online=devices > 0, devices=devices
                    )
        elif body == "echo_request":
            await self._echo(session, envelope)
            return
        elif body in CALL_BODIES:
            self._serve_call_request(session, envelope)
            return
        elif body == "upload_call_report":
            assert session.hello is not None
            await asyncio.sleep(self.backend.stats.delay)
            try:
                accepted = self.backend.stats.handle(
                    session.hello.user_id, session.session_id, envelope.upload_call_report
                )
            except ParleyError as err:
                reply = framing.error_envelope(err, envelope.seq)
            else:
                if accepted is None:
                    return
                reply.call_report_accepted.CopyFrom(accepted)
        elif body == "goodbye":
            self.backend.sessions.pop(session.session_id, None)
            await session.ws.close(code=1000)
            return
        else:
            reply = framing.error_envelope(
                ParleyError(ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE, f"{body} is not for a gateway"),
                envelope.seq,
            )
        await self._send(session, reply)

    async def _resume(self, session: FakeSession, hello: client.Hello) -> tuple[int, str]:
        """Decide what becomes of the Hello's resume_session_id: the Welcome's outcome and
        reason. Takes the session over when it resumes; opens a window for a new one."""
        backend = self.backend
        asked = hello.resume_session_id
        outcome, reason = client.RESUME_OUTCOME_UNSPECIFIED, ""
        if asked:
            window = backend.sessions.get(asked)
            if backend.resume_answer is not None:
                outcome, reason = backend.resume_answer, backend.resume_reason
            elif not backend.windows:
                outcome, reason = client.RESUME_OUTCOME_DISABLED, "no resume window here"
            elif window is None:
                outcome, reason = client.RESUME_OUTCOME_EXPIRED, "no such session"
            elif window.user_id != hello.user_id:
                outcome, reason = client.RESUME_OUTCOME_REFUSED, "another user's session"
            else:
                outcome = client.RESUME_OUTCOME_RESUMED
            if outcome == client.RESUME_OUTCOME_RESUMED and window is not None:
                session.session_id = asked
                session.window = window
                previous, window.connection = window.connection, None
                if previous is not None and not previous.ws.closed:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await previous.ws.close(code=framing.CLOSE_TAKEN_OVER)
                return outcome, reason
            backend.sessions.pop(asked, None)
        if backend.windows:
            session.window = FakeWindow(session.session_id, hello.user_id)
            backend.sessions[session.session_id] = session.window
        return outcome, reason

    async def _replay(self, session: FakeSession, after: int, outcome: int) -> None:
        """Send a resumed session's events after `after` (and `replay_before` more), then
        let new events come to this connection."""
        window = session.window
        assert window is not None
        if outcome == client.RESUME_OUTCOME_RESUMED:
            numbers = window.numbers()
            index = next((i for i, n in enumerate(numbers) if n > after), len(numbers))
            index = max(0, index - self.backend.replay_before)
            while index < len(window.events):  # events pushed meanwhile are appended
                event = window.events[index]
                window.replayed.append(event.event)
                await session.send(event)
                index += 1
        window.connection = session

    async def _echo(self, session: FakeSession, envelope: client.Envelope) -> None:
        """Answer like the echo service: the text back with the caller as the gateway knows
        it (after `delay_ms`, in the background); EchoEvents to the caller's other sessions."""
        request = envelope.echo_request
        assert session.hello is not None
        user_id = session.hello.user_id
        caller = routing.Caller(
            application_key=session.hello.application_key,
            user_id=user_id,
            session_id=session.session_id,
            gateway_id=self.gateway_id,
        )

        async def answer() -> None:
            await asyncio.sleep(request.delay_ms / 1000)
            if self.echo_error is not None:
                reply = framing.error_envelope(self.echo_error, envelope.seq)
            else:
                reply = client.Envelope(
                    reply_to=envelope.seq,
                    echo_reply=echo.EchoReply(
                        text=request.text, caller=caller, answered_by=self.gateway_id
                    ),
                )
            if not session.ws.closed:
                await self._send(session, reply)
            if request.notify_other_devices and self.echo_error is None:
                event = echo.EchoEvent(text=request.text, from_connection_id=session.session_id)
                for other in self.live_sessions():
                    if other is not session and other.hello and other.hello.user_id == user_id:
                        await self._send(other, client.Envelope(echo_event=event))

        task = asyncio.create_task(answer())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _serve_call_request(self, session: FakeSession, envelope: client.Envelope) -> None:
        """Forward to the calls service in a task of its own, as the gateway does (after the
        capability check), and send its reply."""
        assert session.hello is not None
        body = framing.body_name(envelope)

        async def serve() -> None:
            assert session.hello is not None
            reply: client.Envelope | None
            if not session.hello.capabilities.calling:
                error = ParleyError(
                    ErrorCode.ERROR_CODE_CAPABILITY_NOT_ANNOUNCED,
                    f"{body} needs the calling capability, which this session did not "
                    "announce in its Hello (enable it before starting the client)",
                    "capabilities",
                )
                reply = framing.error_envelope(error, envelope.seq)
            else:
                try:
                    answer = await self.backend.calls.handle(session, body, getattr(envelope, body))
                except ParleyError as err:
                    reply = framing.error_envelope(err, envelope.seq)
                else:
                    reply = None if answer is None else bodies.envelope_of(answer)
                    if reply is not None:
                        reply.reply_to = envelope.seq
            if reply is not None and not session.ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self._send(session, reply)

        task = asyncio.create_task(serve())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def push_echo_event(self, text: str, from_connection_id: str = "") -> None:
        """Send an EchoEvent to every live session, as the echo service's events arrive."""
        await self.send_to_all(
            client.Envelope(
                echo_event=echo.EchoEvent(text=text, from_connection_id=from_connection_id)
            )
        )


async def wait_until(predicate: Any, timeout: float = 5.0, interval: float = 0.01) -> None:
    """Poll `predicate()` until true; fail the test after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


# -- the client side of the tests ----------------------------------------------------------


class Recorder(ClientListener):
    """Records a client's events; its started/failed handlers are coroutines on purpose."""

    def __init__(self) -> None:
        self.started = 0
        self.stopped = 0
        self.failed: list[ClientParleyError] = []
        self.logs: list[tuple[int, str, str]] = []

    async def on_client_started(self, client: ParleyClient) -> None:
        await asyncio.sleep(0.01)  # only counted if the client awaits the coroutine
        self.started += 1

    def on_client_stopped(self, client: ParleyClient) -> None:
        self.stopped += 1

    async def on_client_failed(self, client: ParleyClient, error: ClientParleyError) -> None:
        await asyncio.sleep(0)
        self.failed.append(error)

    def on_log_message(self, level: int, area: str, message: str) -> None:
        self.logs.append((level, area, message))

    def logged(self, text: str) -> bool:
        return any(text in message for _, _, message in self.logs)


class FrameFeature(Feature):
    """A feature that hands the frames of `bodies` to one function (plain or coroutine)."""

    def __init__(
        self, name: str, bodies: Iterable[str], handler: Callable[[client.Envelope], Any]
    ) -> None:
        self.name = name
        self.bodies = frozenset(bodies)
        self._handler = handler

    async def on_frame(self, envelope: client.Envelope) -> None:
        result = self._handler(envelope)
        if inspect.isawaitable(result):
            await result


class Harness:
    """Fake gateways sharing one backend, and the clients a test made (terminated at the end)."""

    def __init__(self, backend: FakeBackend, gateways: list[FakeGateway], data_dir: Path) -> None:
        self.backend = backend
        self.gateways = gateways
        self.data_dir = data_dir
        self.clients: list[ParleyClient] = []

    @property
    def hosts(self) -> str:
        return ",".join(gateway.host for gateway in self.gateways)

    def builder(
        self, user_id: str = "alice", secret: str | None = APP_SECRET
    ) -> ParleyClientBuilder:
        builder = (
            ParleyClient.builder()
            .application_key(self.backend.application_key)
            .user_id(user_id)
            .environment_host(self.hosts)
            .persistence_dir(self.data_dir)
            .request_timeout(2.0)
        )
        if secret is not None:
            builder.application_secret(secret)
        return builder

    def client(
        self,
        builder: ParleyClientBuilder | None = None,
        listener: ClientListener | None = None,
        rng: random.Random | None = None,
    ) -> tuple[ParleyClient, Recorder]:
        client = ParleyClient((builder or self.builder()).config, rng=rng)
        client.set_support_messaging(True)
        recorder = Recorder()
        client.add_client_listener(recorder)
        if listener is not None:
            client.add_client_listener(listener)
        self.clients.append(client)
        return client, recorder


@contextlib.asynccontextmanager
async def harness(data_dir: Path, gateways: int = 1, **options: Any) -> AsyncIterator[Harness]:
    backend = FakeBackend()
    started = [
        await FakeGateway(backend, f"gw-{index + 1}", **options).start()
        for index in range(gateways)
    ]
    h = Harness(backend, started, data_dir)
    try:
        yield h
    finally:
        for client_ in h.clients:
            await client_.terminate()
        for gateway in started:
            await gateway.stop()
