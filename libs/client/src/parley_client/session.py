"""The client's life on the gateways: connect, stay connected, reconnect, refresh tokens.

A `Session` owns at most one `Connection` at a time. When the socket drops without
`close()`, it reconnects with backoff and jitter (spread over seconds after a drain, held
back after RATE_LIMITED), trying the replicas in turn starting with a random other one,
with a valid token, and has its client re-apply what the app asked for (listening).
Each reconnect asks to resume the session from the client's ack (resume.py), unless the
gateway closed with 4409: the session lives on another connection, so a new one starts.
Incoming frames that are not replies go, in order, to one `dispatch` callable (the
client's features), each numbered event once; a connection's frames wait until its client
has heard of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import aiohttp
from google.protobuf.message import Message

from parley_client.backoff import first_replica, reconnect_delay
from parley_client.config import Endpoint
from parley_client.connection import Connection
from parley_client.errors import ParleyError, terminated
from parley_client.logs import ClientLog
from parley_client.resume import FrameDispatch, Resume, ResumeStats
from parley_client.tokens import Authenticator
from parley_protocol import framing
from parley_protocol.clock import Clock
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import client as pb

Dispatch = Callable[[pb.Envelope], None]

DEFAULT_HEARTBEAT_INTERVAL = 25.0

# Errors that retrying cannot fix: the client fails instead of reconnecting.
_FATAL = frozenset(
    {
        ErrorCode.ERROR_CODE_PERMISSION_DENIED,
        ErrorCode.ERROR_CODE_UNAUTHENTICATED,
        ErrorCode.ERROR_CODE_UNKNOWN_APPLICATION,
        ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT,
        ErrorCode.ERROR_CODE_INVALID_SIGNATURE,
        ErrorCode.ERROR_CODE_SEQUENCE_REUSED,
        ErrorCode.ERROR_CODE_STALE_TIMESTAMP,
        ErrorCode.ERROR_CODE_INVALID_USER_ID,
        ErrorCode.ERROR_CODE_INVALID_APPLICATION_KEY,
        ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
    }
)
# A connection closed for one of these is worth a reconnect (which gets a new token).
_TOKEN_REFUSED = frozenset(
    {ErrorCode.ERROR_CODE_UNAUTHENTICATED, ErrorCode.ERROR_CODE_TOKEN_EXPIRED}
)


def is_fatal(error: ParleyError) -> bool:
    return error.error_code in _FATAL


class SessionEvents(Protocol):
    """What the session tells its client."""

    def hello(self, access_token: str, resume_session_id: str, resume_from_event: int) -> pb.Hello:
        """The Hello of a connection; it asks to resume that session, if any."""

    async def session_down(self, reason: ParleyError) -> None: ...

    async def restore(self, connection: Connection, welcome: pb.Welcome) -> None:
        """Re-apply what the app asked for on a new connection (what its Hello carried and
        its Welcome confirms needs nothing more), before it counts as up."""

    def connected(self, welcome: pb.Welcome, resumed: bool) -> None:
        """A connection is up (before its frames are dispatched); `resumed`: it goes on with
        the previous session, so no event was missed."""

    async def session_up(self) -> None: ...

    async def session_failed(self, error: ParleyError) -> None: ...


class _Gate:
    """Holds a connection's frames until `open()`, so that its client hears of the
    connection before any frame that came on it."""

    def __init__(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch
        self._held: list[pb.Envelope] | None = []

    def __call__(self, envelope: pb.Envelope) -> None:
        if self._held is None:
            self._dispatch(envelope)
        else:
            self._held.append(envelope)

    def open(self) -> None:
        held, self._held = self._held or [], None
        for envelope in held:
            self._dispatch(envelope)


class Session:
    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        endpoints: Sequence[Endpoint],
        authenticator: Authenticator,
        events: SessionEvents,
        dispatch: FrameDispatch,
        clock: Clock,
        log: ClientLog,
        request_timeout: float,
        heartbeat_interval: float | None,
        rng: random.Random | None = None,
        resume_stats: ResumeStats | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("a session needs at least one endpoint")
        self._http = http
        self._endpoints = tuple(endpoints)
        self._auth = authenticator
        self._events = events
        self._dispatch = dispatch
        self._clock = clock
        self._log = log
        self._request_timeout = request_timeout
        self._heartbeat_override = heartbeat_interval
        self._rng = rng or random.Random()
        self._index = 0
        self.connection: Connection | None = None
        self.welcome: pb.Welcome | None = None
        self._up = False
        self._closing = False
        self._fatal: ParleyError | None = None
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._resume = Resume(resume_stats or ResumeStats(), log, self._ack_advanced)

    # -- what the client uses ------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        return self._up and self.connection is not None and not self.connection.is_closed

    @property
    def live_connection(self) -> Connection | None:
        """The connection, while it is welcomed and open."""
        return self.connection if self.is_up else None

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoints[self._index]

    async def open(self) -> pb.Welcome:
        """First connection: a token, then each replica once in order."""
        await self._auth.valid_token(self._endpoints)
        last: ParleyError | None = None
        for index in range(len(self._endpoints)):
            try:
                await self._connect(index)
                break
            except ParleyError as exc:
                if is_fatal(exc):
                    raise
                last = exc
                self._log.warning("session", f"cannot connect to {self._endpoints[index]}: {exc}")
        else:
            assert last is not None
            raise last
        self._tasks["supervise"] = asyncio.create_task(self._supervise())
        assert self.welcome is not None
        return self.welcome

    async def send(self, body: str, message: Message, traceparent: str = "") -> int:
        return await self._live_connection(body).send(body, message, traceparent)

    async def request(
        self, body: str, message: Message, timeout: float | None = None, traceparent: str = ""
    ) -> pb.Envelope:
        connection = self._live_connection(body)
        self._in_flight += 1
        self._idle.clear()
        try:
            return await connection.request(
                body, message, timeout or self._request_timeout, traceparent
            )
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> None:
        """Wait (at most `timeout`) until no request is waiting for its reply."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self, goodbye: bool) -> None:
        """Stop for good: Goodbye (if asked), close the socket, stop every task."""
        self._closing = True
        self._up = False
        current = asyncio.current_task()
        refresh = self._tasks.pop("refresh", None)
        if refresh is not None and refresh is not current:
            refresh.cancel()
        connection = self.connection
        if connection is not None:
            await connection.close("terminate" if goodbye else None)
        for name, task in list(self._tasks.items()):
            if task is not current:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._tasks.pop(name, None)

    # -- connecting ------------------------------------------------------------------------

    def _rotation(self, start: int) -> list[Endpoint]:
        n = len(self._endpoints)
        return [self._endpoints[(start + k) % n] for k in range(n)]

    async def _connect(self, index: int) -> None:
        endpoint = self._endpoints[index]
        endpoints = self._rotation(index)
        token = await self._auth.valid_token(endpoints)
        gate = _Gate(self._deliver)
        try:
            connection, welcome = await self._open(endpoint, token.token, gate)
        except ParleyError as exc:
            if exc.error_code not in _TOKEN_REFUSED:
                raise
            self._log.info(
                "session", f"{endpoint} refused the access token ({exc.code}); renewing it"
            )
            token = await self._auth.new_token(endpoints)
            gate = _Gate(self._deliver)
            connection, welcome = await self._open(endpoint, token.token, gate)
        await self._welcomed(index, connection, welcome)
        gate.open()

    async def _welcomed(self, index: int, connection: Connection, welcome: pb.Welcome) -> None:
        """Take a welcomed connection into use, re-apply listening, and report it."""
        endpoint = self._endpoints[index]
        if self._closing:
            await connection.close()
            raise terminated()
        self._index = index
        self.connection = connection
        self.welcome = welcome
        resumed = self._resume.welcomed(welcome)
        self._auth.learn_server_time(welcome.server_time_ms)
        self._auth.confirm_expiry(welcome.token_expires_at_ms)
        interval = self._heartbeat_interval(welcome)
        connection.start_heartbeat(interval, welcome.gateway_pings)
        self._tasks["refresh"] = asyncio.create_task(self._refresh(connection))
        self._log.info(
            "session",
            f"connected to {endpoint} (gateway {welcome.gateway_id}, session "
            f"{welcome.session_id}, heartbeat {interval:g} s)",
        )
        await self._events.restore(connection, welcome)
        self._up = not connection.is_closed
        self._events.connected(welcome, resumed)

    def _heartbeat_interval(self, welcome: pb.Welcome) -> float:
        """The app's interval, but never longer than the gateway's: it drops sessions that
        stay silent past its own interval."""
        server: float = welcome.heartbeat_interval_ms / 1000
        override = self._heartbeat_override
        if override and server:
            return min(override, server)
        return override or server or DEFAULT_HEARTBEAT_INTERVAL

    async def _open(
        self, endpoint: Endpoint, token: str, dispatch: Dispatch
    ) -> tuple[Connection, pb.Welcome]:
        return await Connection.open(
            self._http,
            endpoint,
            self._events.hello(token, *self._resume.ask()),
            timeout=self._request_timeout,
            clock=self._clock,
            log=self._log,
            dispatch=dispatch,
            ack=lambda: self._resume.acked,
        )

    def _deliver(self, envelope: pb.Envelope) -> None:
        """A frame of the welcomed connection: to the features, once (resume.py)."""
        self._resume.deliver(envelope, self._dispatch)

    def _ack_advanced(self) -> None:
        connection = self.live_connection
        if connection is not None:
            connection.ack_advanced()

    async def _supervise(self) -> None:
        """Wait for the connection to drop; reconnect unless closing or the error is fatal."""
        while True:
            connection = self.connection
            assert connection is not None
            reason = await connection.wait_closed()
            self._up = False
            refresh = self._tasks.pop("refresh", None)
            if refresh is not None:
                refresh.cancel()
            if self._closing:
                return
            if connection.peer_close_code == framing.CLOSE_TAKEN_OVER:
                self._log.info(
                    "session",
                    f"session {self.welcome.session_id if self.welcome else ''} was resumed "
                    "on another connection; this client starts a new one",
                )
                self._resume.taken_over()
            fatal = self._fatal or (
                reason if is_fatal(reason) and (reason.error_code not in _TOKEN_REFUSED) else None
            )
            if fatal is not None:
                self._log.error("session", f"connection to {connection.endpoint} ended: {fatal}")
                await self._events.session_failed(fatal)
                return
            self._log.warning(
                "session", f"connection to {connection.endpoint} lost ({reason}); reconnecting"
            )
            await self._events.session_down(reason)
            if not await self._reconnect(reason, connection.peer_close_code):
                return
            self._log.info("session", f"reconnected to {self.endpoint}")
            await self._events.session_up()

    async def _reconnect(self, reason: ParleyError, close_code: int | None) -> bool:
        """Try the replicas in turn from a random other one until one welcomes us."""
        start = first_replica(self._index, len(self._endpoints), self._rng)
        attempt = 0
        while not self._closing:
            delay = reconnect_delay(attempt, self._rng, reason.error_code, close_code)
            index = (start + attempt) % len(self._endpoints)
            self._log.info("session", f"reconnecting to {self._endpoints[index]} in {delay:.2f} s")
            await asyncio.sleep(delay)
            if self._closing:
                return False
            try:
                await self._connect(index)
                return True
            except ParleyError as exc:
                if self._closing:
                    return False
                if is_fatal(exc):
                    self._log.error("session", f"cannot reconnect: {exc}")
                    await self._events.session_failed(exc)
                    return False
                attempt += 1
                reason = exc
                self._log.info(
                    "session",
                    f"reconnect attempt {attempt} to {self._endpoints[index]} failed ({exc})",
                )
            except Exception as exc:  # a bug or a local fault: keep trying, loudly
                attempt += 1
                reason = ParleyError(ErrorCode.ERROR_CODE_INTERNAL, repr(exc))
                self._log.error(
                    "session", f"reconnect attempt {attempt} failed unexpectedly: {exc!r}"
                )
        return False

    # -- while connected -------------------------------------------------------------------

    async def _refresh(self, connection: Connection) -> None:
        """Renew the access token at ~80% of its lifetime and hand it to the gateway."""
        try:
            await self._refresh_loop(connection)
        except Exception as exc:  # the gateway closes on expiry; reconnecting renews then
            self._log.error("session", f"token renewal stopped: {exc!r}")

    async def _refresh_loop(self, connection: Connection) -> None:
        retry_in: float | None = None
        while not connection.is_closed:
            await asyncio.sleep(retry_in if retry_in is not None else self._auth.refresh_delay())
            retry_in = None
            try:
                token = await self._auth.new_token(self._rotation(self._index))
            except ParleyError as exc:
                if is_fatal(exc):
                    self._fatal = exc
                    await asyncio.shield(connection.close())
                    return
                retry_in = 1.0
                self._log.warning("session", f"cannot renew the access token yet: {exc}")
                continue
            try:
                reply = await connection.request(
                    "refresh_token",
                    pb.RefreshToken(access_token=token.token),
                    self._request_timeout,
                )
            except ParleyError as exc:
                if connection.is_closed:
                    return
                retry_in = 1.0
                self._log.warning("session", f"the gateway did not take the renewed token: {exc}")
                continue
            if reply.WhichOneof("body") == "token_accepted":
                self._auth.confirm_expiry(reply.token_accepted.token_expires_at_ms)
            self._log.debug("session", "access token renewed")

    def _live_connection(self, body: str) -> Connection:
        connection = self.connection
        if not self.is_up or connection is None:
            raise ParleyError.network(f"cannot send {body}: the client is not connected")
        return connection
