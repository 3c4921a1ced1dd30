"""One WebSocket session with a gateway: Hello/Welcome, framing, replies, heartbeats.

Every frame is one `parley.v1.Envelope`. The client numbers its frames 1, 2, 3, ...; a
server frame with `reply_to` answers the client frame with that `seq` (an `Error` body
fails the request). Every other frame goes to `dispatch`, also those that come between
Hello and Welcome: they are held until the Welcome is in, or dropped if the Hello fails.
Every frame after the Hello carries the client's ack (`ack()`); when the ack moved and no
frame carried it since, a Ping does (acks.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import aiohttp
from google.protobuf.message import Message

from parley_client.acks import AckPinger
from parley_client.config import Endpoint
from parley_client.errors import ErrorType, ParleyError
from parley_client.logs import ClientLog
from parley_protocol import framing
from parley_protocol.clock import Clock, now_ms
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.pb import client as pb

# A Pong may take this long at least, however short the heartbeat interval.
MIN_PONG_TIMEOUT = 1.0
# From a gateway that pings idle clients (Welcome.gateway_pings) the client asks with a Ping
# of its own only after hearing nothing for this many intervals (the gateway's Ping comes
# after one, plus a sweep round), and waits half an interval for its Pong: a gateway gone
# silent is noticed within two intervals, as when the client pings every interval.
QUIET_INTERVALS = 1.5
# WebSocket control frames the reader handles itself (autoping is off).
CONTROL_FRAMES = frozenset((aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG))
# How long a closing handshake may take before the socket is dropped.
CLOSE_TIMEOUT = 2.0
# The Welcome may take this many request timeouts. A gateway that took the WebSocket is
# alive, and its sign-ins may be queued behind a reconnect storm's (it runs a bounded number
# at once): a client that gave up after one timeout went to the back of the queue again,
# and the gateway had often done the work (1,191 Hellos sent twice in a storm of 10,000).
WELCOME_TIMEOUTS = 3


def _frame_error(envelope: pb.Envelope) -> ParleyError:
    return ParleyError.from_protocol(ProtocolError.from_proto(envelope.error))


def _no_ack() -> int:
    return 0


def _ignore_outcome(future: asyncio.Future[pb.Envelope]) -> None:
    if not future.cancelled():
        future.exception()


class Connection:
    """A live, welcomed WebSocket to one gateway replica. Build it with `Connection.open`."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        endpoint: Endpoint,
        clock: Clock,
        log: ClientLog,
        dispatch: Callable[[pb.Envelope], None],
        ack: Callable[[], int] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._ws = ws
        self._clock = clock
        self._log = log
        self._dispatch = dispatch
        self._ack = ack or _no_ack
        self._sent_ack = 0  # the highest ack a frame carried so far
        self._acks = AckPinger(self._ack, lambda: self._sent_ack, self._ping_for_ack)
        self._seq = 0
        self._send_lock = asyncio.Lock()
        self._pending: dict[int, asyncio.Future[pb.Envelope]] = {}
        self._closed: asyncio.Future[ParleyError] = asyncio.get_running_loop().create_future()
        self._close_reason: ParleyError | None = None  # why we closed it, when we did
        self._last_error: ParleyError | None = None  # last unsolicited Error frame
        self._peer_close_code: int | None = None
        self._reader: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._heard_at = asyncio.get_running_loop().time()  # the last frame of any kind

    @classmethod
    async def open(
        cls,
        http: aiohttp.ClientSession,
        endpoint: Endpoint,
        hello: pb.Hello,
        *,
        timeout: float,
        clock: Clock,
        log: ClientLog,
        dispatch: Callable[[pb.Envelope], None],
        ack: Callable[[], int] | None = None,
    ) -> tuple[Connection, pb.Welcome]:
        """Connect, send Hello and wait for Welcome; ParleyError if any step fails. The
        WebSocket may take `timeout`, the Welcome `WELCOME_TIMEOUTS` times it. The frames
        sent after the Hello carry `ack()` (the Hello asks its own resume, if any)."""
        url = endpoint.connect_url
        try:
            async with asyncio.timeout(timeout):
                ws = await http.ws_connect(
                    url,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
                    autoping=False,  # the reader answers Pings: hearing one is a heartbeat
                    max_msg_size=framing.MAX_FRAME_BYTES,
                )
        except TimeoutError as exc:
            raise ParleyError(
                ErrorCode.ERROR_CODE_TIMEOUT,
                f"connecting to {url} took over {timeout:g} s",
                ErrorType.NETWORK,
            ) from exc
        except aiohttp.WSServerHandshakeError as exc:
            code = (
                ErrorCode.ERROR_CODE_UNAVAILABLE
                if exc.status in (502, 503, 504)
                else ErrorCode.ERROR_CODE_NOT_FOUND
                if exc.status == 404
                else ErrorCode.ERROR_CODE_INTERNAL
            )
            raise ParleyError(
                code,
                f"{url} refused the WebSocket upgrade: HTTP {exc.status} {exc.message}",
                ErrorType.NETWORK if code == ErrorCode.ERROR_CODE_UNAVAILABLE else None,
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ParleyError.network(f"cannot connect to {url}: {exc}") from exc

        connection = cls(ws, endpoint, clock, log, dispatch, ack)
        try:
            hello_seq, _ = await connection._send("hello", hello, carry_ack=False)
            welcome, held = await connection._await_welcome(hello_seq, timeout * WELCOME_TIMEOUTS)
        except BaseException:
            await connection._drop()
            raise
        for envelope in held:  # before anything the reader gets, so the order is kept
            connection._on_envelope(envelope)
        connection._reader = asyncio.create_task(connection._read())
        return connection, welcome

    @property
    def is_closed(self) -> bool:
        return self._closed.done()

    @property
    def peer_close_code(self) -> int | None:
        """The WebSocket close code the gateway ended the connection with; None while it is
        open, when the client closed it, or when no close code came."""
        return self._peer_close_code

    async def wait_closed(self) -> ParleyError:
        """Wait until the socket is closed; the error says why."""
        return await asyncio.shield(self._closed)

    async def send(self, body: str, message: Message, traceparent: str = "") -> int:
        """Send one frame (in the trace `traceparent`, if given); its seq."""
        seq, _ = await self._send(body, message, traceparent=traceparent)
        return seq

    async def request(
        self, body: str, message: Message, timeout: float, traceparent: str = ""
    ) -> pb.Envelope:
        """Send one frame (in the trace `traceparent`, if given) and wait for the frame that
        replies to it."""
        seq, reply = await self._send(body, message, expect_reply=True, traceparent=traceparent)
        assert reply is not None
        try:
            return await asyncio.wait_for(reply, timeout)
        except TimeoutError:
            raise ParleyError(
                ErrorCode.ERROR_CODE_TIMEOUT,
                f"no reply to {body} (seq {seq}) from {self.endpoint} within {timeout:g} s",
                ErrorType.NETWORK,
            ) from None
        finally:
            self._pending.pop(seq, None)

    def ack_advanced(self) -> None:
        """The ack moved: a Ping carries it soon, unless another frame does first."""
        if not self.is_closed:
            self._acks.advanced()

    def start_heartbeat(self, interval: float, gateway_pings: bool = False) -> None:
        """Keep the connection known alive both ways: with `gateway_pings` (the Welcome's)
        by answering the gateway's Pings and asking only when it has gone quiet; without,
        by a Ping every `interval`."""
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat(interval, gateway_pings))

    async def close(self, goodbye: str | None = None) -> None:
        """Close on purpose; with `goodbye`, say Goodbye first and let the gateway close."""
        if self.is_closed:
            return
        self._close_reason = self._close_reason or ParleyError.network(
            "the client closed the connection"
        )
        if goodbye is not None and not self._ws.closed:
            try:
                await self._send("goodbye", pb.Goodbye(reason=goodbye))
                await asyncio.wait_for(asyncio.shield(self._closed), CLOSE_TIMEOUT)
            except (ParleyError, TimeoutError) as exc:
                self._log.debug("connection", f"no clean close after Goodbye: {exc}")
        await self._drop()

    async def abort(self, reason: ParleyError) -> None:
        """Close because something is wrong with the connection; `reason` is reported."""
        if self.is_closed:
            return
        self._close_reason = reason
        await self._drop()

    # -- internals ------------------------------------------------------------------------

    async def _send(
        self,
        body: str,
        message: Message,
        expect_reply: bool = False,
        carry_ack: bool = True,
        traceparent: str = "",
    ) -> tuple[int, asyncio.Future[pb.Envelope] | None]:
        async with self._send_lock:
            seq = self._seq + 1
            envelope = pb.Envelope(
                seq=seq, ack=self._ack() if carry_ack else 0, traceparent=traceparent
            )
            getattr(envelope, body).CopyFrom(message)
            data = framing.encode(envelope)
            if len(data) > framing.MAX_FRAME_BYTES:
                # The gateway would close the session over it: refuse it here instead.
                raise ParleyError(
                    ErrorCode.ERROR_CODE_FRAME_TOO_LARGE,
                    f"{body} would be a frame of {len(data)} bytes, over the limit of "
                    f"{framing.MAX_FRAME_BYTES} bytes; it was not sent",
                    ErrorType.OTHER,
                )
            if self.is_closed or self._ws.closed:
                raise ParleyError.network(f"the connection to {self.endpoint} is closed")
            self._seq = seq
            reply: asyncio.Future[pb.Envelope] | None = None
            if expect_reply:
                reply = asyncio.get_running_loop().create_future()
                self._pending[seq] = reply
            try:
                await self._ws.send_bytes(data)
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
                self._pending.pop(seq, None)
                raise ParleyError.network(f"cannot send to {self.endpoint}: {exc}") from exc
            self._sent_ack = max(self._sent_ack, envelope.ack)
            return seq, reply

    async def _ping_for_ack(self) -> None:
        """A Ping that carries the ack; its Pong is not waited for."""
        try:
            _, pong = await self._send(
                "ping", pb.Ping(client_time_ms=now_ms(self._clock)), expect_reply=True
            )
        except ParleyError as exc:
            self._log.debug("connection", f"cannot send the ack to {self.endpoint}: {exc}")
            return
        assert pong is not None
        pong.add_done_callback(_ignore_outcome)

    async def _await_welcome(
        self, hello_seq: int, timeout: float
    ) -> tuple[pb.Welcome, list[pb.Envelope]]:
        """The Welcome answering Hello, and the frames that came before it (in order)."""
        held: list[pb.Envelope] = []
        try:
            answer = await self._answer_to_hello(hello_seq, timeout, held)
            body = framing.body_name(answer)
            if body == "error":
                raise _frame_error(answer)
            if body != "welcome":
                raise ParleyError(
                    ErrorCode.ERROR_CODE_WRONG_STATE,
                    f"{self.endpoint} answered Hello with {body} instead of Welcome",
                )
        except ParleyError as exc:
            if held:
                bodies = ", ".join(framing.body_name(envelope) for envelope in held)
                self._log.warning(
                    "connection",
                    f"dropping {len(held)} frame(s) from {self.endpoint} that came before "
                    f"Hello failed ({bodies}): {exc}",
                )
            raise
        return answer.welcome, held

    async def _answer_to_hello(
        self, hello_seq: int, timeout: float, held: list[pb.Envelope]
    ) -> pb.Envelope:
        """Read until the frame with reply_to == `hello_seq`; others are appended to `held`."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = await self._ws.receive()
                    self._heard_at = loop.time()
                    if message.type in CONTROL_FRAMES:
                        await self._answer_control(message)
                        continue
                    if message.type == aiohttp.WSMsgType.BINARY:
                        envelope = self._decode_before_welcome(message.data)
                        if envelope is None:
                            continue
                        if envelope.reply_to == hello_seq:
                            return envelope
                        held.append(envelope)
                    elif message.type == aiohttp.WSMsgType.TEXT:
                        self._log.warning(
                            "connection", f"ignoring a TEXT frame from {self.endpoint}"
                        )
                    elif message.type == aiohttp.WSMsgType.ERROR:
                        raise ParleyError.network(
                            f"connection to {self.endpoint} failed before Welcome: "
                            f"{self._ws.exception()}"
                        )
                    else:  # closing or closed
                        last = held[-1] if held else None
                        last_error = (
                            _frame_error(last)
                            if last is not None and framing.body_name(last) == "error"
                            else None
                        )
                        raise self._peer_close_reason(last_error, " before Welcome")
        except TimeoutError:
            raise ParleyError(
                ErrorCode.ERROR_CODE_TIMEOUT,
                f"{self.endpoint} sent no Welcome within {timeout:g} s",
                ErrorType.NETWORK,
            ) from None

    def _decode_before_welcome(self, data: bytes) -> pb.Envelope | None:
        """A frame read before Welcome; None for a message this client does not know."""
        try:
            return framing.decode(data)
        except ProtocolError as exc:
            if exc.code == ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE:
                self._log.warning("connection", f"frame from {self.endpoint}: {exc.reason}")
                return None
            raise ParleyError(
                exc.code, f"{self.endpoint} sent a bad frame before Welcome: {exc.reason}"
            ) from exc

    async def _read(self) -> None:
        failure: ParleyError | None = None
        try:
            loop = asyncio.get_running_loop()
            async for message in self._ws:
                self._heard_at = loop.time()
                if message.type in CONTROL_FRAMES:
                    await self._answer_control(message)
                    continue
                if message.type == aiohttp.WSMsgType.BINARY:
                    self._on_frame(message.data)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    failure = ParleyError.network(
                        f"connection to {self.endpoint} failed: {self._ws.exception()}"
                    )
                    break
                else:
                    self._log.warning(
                        "connection", f"ignoring a {message.type.name} frame from {self.endpoint}"
                    )
        except Exception as exc:  # the socket broke under us
            failure = ParleyError.network(f"connection to {self.endpoint} failed: {exc!r}")
        finally:
            await self._finish(failure)

    async def _answer_control(self, message: aiohttp.WSMessage) -> None:
        """A Ping is answered with a Pong; a Pong needs nothing (it was heard)."""
        if message.type == aiohttp.WSMsgType.PING:
            with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError):
                await self._ws.pong(message.data)

    def _on_frame(self, data: bytes) -> None:
        try:
            envelope = framing.decode(data)
        except ProtocolError as exc:
            self._log.warning("connection", f"bad frame from {self.endpoint}: {exc.reason}")
            return
        self._on_envelope(envelope)

    def _on_envelope(self, envelope: pb.Envelope) -> None:
        body = framing.body_name(envelope)
        self._last_error = None  # an Error explains a close only if it was the last frame
        if envelope.reply_to:
            reply = self._pending.pop(envelope.reply_to, None)
            if reply is not None:
                if not reply.done():
                    if body == "error":
                        reply.set_exception(_frame_error(envelope))
                    else:
                        reply.set_result(envelope)
                return
        if body == "error":
            self._last_error = _frame_error(envelope)
        self._dispatch(envelope)

    async def _beat(self, interval: float, gateway_pings: bool) -> None:
        loop = asyncio.get_running_loop()
        pong_timeout = max(interval / 2 if gateway_pings else interval, MIN_PONG_TIMEOUT)
        asked_at = 0.0
        while not self.is_closed:
            if gateway_pings:
                quiet = max(self._heard_at, asked_at) + interval * QUIET_INTERVALS - loop.time()
                if quiet > 0:
                    await asyncio.sleep(quiet)
                    continue
                asked_at = loop.time()
            else:
                await asyncio.sleep(interval)
            try:
                await self.request(
                    "ping", pb.Ping(client_time_ms=now_ms(self._clock)), pong_timeout
                )
            except ParleyError as exc:
                if self.is_closed:
                    return
                if exc.error_code == ErrorCode.ERROR_CODE_TIMEOUT:
                    self._log.warning(
                        "connection", f"no Pong from {self.endpoint} within {pong_timeout:g} s"
                    )
                    await self.abort(
                        ParleyError(
                            ErrorCode.ERROR_CODE_HEARTBEAT_TIMEOUT,
                            f"{self.endpoint} stopped answering heartbeats",
                            ErrorType.NETWORK,
                        )
                    )
                    return
                self._log.warning("connection", f"Ping refused by {self.endpoint}: {exc}")

    async def _drop(self) -> None:
        """Close the socket (bounded by CLOSE_TIMEOUT) and wait for the reader to finish."""
        current = asyncio.current_task()
        if self._heartbeat is not None and self._heartbeat is not current:
            self._heartbeat.cancel()
        self._acks.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(), CLOSE_TIMEOUT + 1)
        if self._reader is not None and self._reader is not current:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._reader), CLOSE_TIMEOUT)
            if not self._reader.done():
                self._reader.cancel()
        await self._finish(None)

    def _peer_close_reason(self, last_error: ParleyError | None, when: str = "") -> ParleyError:
        """Why the gateway closed: the Error frame it sent last, unless the close code says
        "reconnect" (a drain or a passing failure: whatever Error frames came before), else
        what the close code stands for."""
        code = self._ws.close_code
        if last_error is not None and code not in framing.RECONNECT_CLOSES:
            return last_error
        text = f"{self.endpoint} closed the connection{when}" + (
            f" (close code {code})" if code is not None else ""
        )
        error_code = framing.error_for_close(code or 0) or ErrorCode.ERROR_CODE_UNAVAILABLE
        return ParleyError(error_code, text)

    async def _finish(self, failure: ParleyError | None) -> None:
        if self._closed.done():
            return
        if self._close_reason is not None:
            reason = self._close_reason
        else:
            self._peer_close_code = self._ws.close_code
            reason = self._peer_close_reason(self._last_error)
            if failure is not None and reason is not self._last_error:
                reason = failure  # the socket broke: say how, not "closed"
        pending, self._pending = self._pending, {}
        for reply in pending.values():
            if not reply.done():
                reply.set_exception(
                    ParleyError.network(
                        f"the connection to {self.endpoint} closed before the reply came"
                    )
                )
        self._closed.set_result(reason)
        if self._heartbeat is not None and self._heartbeat is not asyncio.current_task():
            self._heartbeat.cancel()
        self._acks.stop()
