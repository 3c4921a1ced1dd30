"""What the local provider servers share: serving a fake over TLS on 127.0.0.1 (HTTP/2 or
HTTP/1.1, chosen by ALPN), the requests and answers of a fake, and the state a test steers
(dead tokens, an outage) and reads (accepted pushes, auth failures).

HTTP/1.1 is aiohttp's low-level server (its C parser); HTTP/2 is the `h2` state machine
driven straight from an asyncio protocol. Either costs the bench little CPU per push, so
the push service's own throughput shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from aiohttp import web

from tests.support.lifecycle import Started
from tests.support.providers.tls import LocalTls

log = logging.getLogger("tests.providers.server")

MAX_CONCURRENT_STREAMS = 1000
# How long `stop()` lets open connections close (TLS close_notify) before it aborts them.
CLOSE_SECONDS = 1.0


@dataclass(frozen=True)
class PushRecord:
    """One push a fake accepted."""

    token: str
    kind: str
    payload: str  # the "parley" data value as delivered (decrypted for Web Push)
    headers: dict[str, str]  # the request's headers (names lower case)
    body: Any  # the request's JSON as the provider read it (decrypted for Web Push)
    arrived: float  # time.time()
    http_version: str  # "1.1" or "2"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded, without the query
    headers: dict[str, str]  # names lower case; HTTP/2's :authority as "host"
    body: bytes
    http_version: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(value).encode(),
            {"content-type": "application/json; charset=utf-8", **(headers or {})},
        )


Peer = tuple[str, int]
# Answers one request (from the client at the address given).
Handler = Callable[[Request, Peer], Awaitable[Response]]


class _Connection(asyncio.Protocol):
    """One accepted TLS connection: hands it to the HTTP/2 or the HTTP/1.1 protocol, as
    ALPN chose, and tells the server when it is gone."""

    def __init__(self, server: LocalHttpsServer) -> None:
        self._server = server
        self._inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.peer: Peer = ("", 0)
        self.taken = 0  # requests taken on this connection
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self._server.stopping:  # its TLS handshake ended after stop() began
            transport.abort()
            return
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1]))
        tls = transport.get_extra_info("ssl_object")
        if tls is not None and tls.selected_alpn_protocol() == "h2":
            self._inner = _H2Protocol(self._server, self)
        else:
            self._inner = self._server.http1_protocol()
        self._server.connection_made(self)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        assert self._inner is not None
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        assert self._inner is not None
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        assert self._inner is not None
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        assert self._inner is not None
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            if self._inner is not None:
                self._inner.connection_lost(exc)
        finally:
            self._server.connection_lost(self)
            if not self.lost.done():
                self.lost.set_result(None)

    def close(self) -> None:
        """Closes it now (HTTP/2: GOAWAY first)."""
        if isinstance(self._inner, _H2Protocol):
            self._inner.go_away(None)
        elif self.transport is not None:
            self.transport.close()


@dataclass
class _Stream:
    headers: list[tuple[bytes, bytes]]
    body: bytearray = field(default_factory=bytearray)


class _H2Protocol(asyncio.Protocol):
    """HTTP/2 server side: each request is taken when its stream ends and answered by a task
    of its own; received data is acknowledged at once (the client's windows never stall);
    after `requests_per_connection` requests no more are taken, and once they are answered,
    GOAWAY names the last one taken and the connection closes."""

    def __init__(self, server: LocalHttpsServer, connection: _Connection) -> None:
        self._server = server
        self._connection = connection
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=False,
                header_encoding=None,
                # What the client sends is validated; the fake's own answers (lower-case
                # names, no connection headers) need not be, each time.
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self._h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS
            },
        )
        self._streams: dict[int, _Stream] = {}  # requests being received
        self._unsent: dict[int, bytes] = {}  # answers' body data waiting for window
        self._answering = 0  # requests taken, not yet answered
        self._last_stream: int | None = None  # set: GOAWAY once the answers are out
        self._flushing = False  # a flush is due at the end of this turn of the loop
        self._gone = False  # GOAWAY sent or the connection ended
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._h2.initiate_connection()
        self._flush()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._transport is not None:
            self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self._gone:
            return
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._gone = True  # h2 queued a GOAWAY with the error
            self._flush()
            if self._transport is not None:
                self._transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                if self._last_stream is None:
                    self._streams[event.stream_id] = _Stream(list(event.headers))
            elif isinstance(event, h2.events.DataReceived):
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.body += event.data
            elif isinstance(event, h2.events.StreamEnded):
                stream = self._streams.pop(event.stream_id, None)
                if stream is not None and self._last_stream is None:
                    self._take(event.stream_id, stream)
            elif isinstance(event, h2.events.StreamReset):
                self._streams.pop(event.stream_id, None)
                self._unsent.pop(event.stream_id, None)
            elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                self._send_unsent()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._gone = True
                if self._transport is not None:
                    self._transport.close()
                return
        self._flush()
        self._go_away_when_answered()

    def _take(self, stream_id: int, stream: _Stream) -> None:
        pseudo: dict[bytes, bytes] = {}
        headers: dict[str, str] = {}
        for name, value in stream.headers:
            if name.startswith(b":"):
                pseudo[name] = value
            else:
                headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        if b":authority" in pseudo:
            headers.setdefault("host", pseudo[b":authority"].decode("latin-1"))
        request = Request(
            method=pseudo.get(b":method", b"").decode("ascii").upper(),
            path=unquote(pseudo.get(b":path", b"").partition(b"?")[0].decode("ascii")),
            headers=headers,
            body=bytes(stream.body),
            http_version="2",
        )
        self._connection.taken += 1
        if self._connection.taken >= self._server.requests_per_connection:
            self._last_stream = stream_id
        self._answering += 1
        self._server.spawn(self._answer(stream_id, request))

    async def _answer(self, stream_id: int, request: Request) -> None:
        try:
            response = await self._server.handler(request, self._connection.peer)
        except Exception:
            log.exception("the fake failed on %s %s", request.method, request.path)
            response = Response(500, b"internal error")
        finally:
            self._answering -= 1
        if self._gone:
            return
        try:
            self._h2.send_headers(
                stream_id,
                [
                    (b":status", str(response.status).encode()),
                    *((k.lower().encode(), v.encode()) for k, v in response.headers.items()),
                    (b"content-length", str(len(response.body)).encode()),
                ],
                end_stream=not response.body,
            )
            if response.body:
                self._unsent[stream_id] = response.body
                self._send_body(stream_id)
        except h2.exceptions.StreamClosedError:  # the client reset it meanwhile
            self._unsent.pop(stream_id, None)
        if not self._flushing:  # once for the answers of this turn of the loop
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush_answers)

    def _flush_answers(self) -> None:
        self._flushing = False
        if not self._gone:
            self._flush()
            self._go_away_when_answered()

    def _send_body(self, stream_id: int) -> None:
        """As much of the stream's answer as the client's windows take."""
        data = self._unsent.pop(stream_id)
        while data:
            size = min(
                len(data),
                self._h2.local_flow_control_window(stream_id),
                self._h2.max_outbound_frame_size,
            )
            if size <= 0:
                self._unsent[stream_id] = data  # the rest when the window opens
                return
            self._h2.send_data(stream_id, data[:size], end_stream=size == len(data))
            data = data[size:]

    def _send_unsent(self) -> None:
        for stream_id in list(self._unsent):
            try:
                self._send_body(stream_id)
            except h2.exceptions.StreamClosedError:
                self._unsent.pop(stream_id, None)

    def _go_away_when_answered(self) -> None:
        if self._last_stream is not None and not self._answering and not self._unsent:
            self.go_away(self._last_stream)

    def go_away(self, last_stream: int | None) -> None:
        """GOAWAY (no error), naming `last_stream` as the last one processed (None: the
        highest the client opened), then close."""
        if self._gone:
            return
        self._gone = True
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.close_connection(last_stream_id=last_stream)
            self._flush()
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        self._streams.clear()
        self._unsent.clear()


class LocalHttpsServer:
    """Serves `handler` over TLS on a free port of 127.0.0.1 until `stop()`: HTTP/2 when the
    client's ALPN chooses "h2", else HTTP/1.1. A connection is closed after
    `requests_per_connection` requests (HTTP/1.1: the last answer says `Connection: close`;
    HTTP/2: GOAWAY once they are answered), as real providers do now and then."""

    def __init__(
        self, handler: Handler, tls: LocalTls, *, requests_per_connection: int = 1_000_000
    ) -> None:
        self.handler = handler
        self._tls = tls
        self.requests_per_connection = requests_per_connection
        self._listener: asyncio.Server | None = None
        self._http1: web.Server | None = None
        self._connections: set[_Connection] = set()
        self._by_transport: dict[asyncio.BaseTransport, _Connection] = {}
        self._answering: set[asyncio.Task[None]] = set()  # HTTP/2 answers in progress
        self.stopping = False
        self.port = 0

    async def start(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._tls.cert_file, self._tls.key_file)
        context.set_alpn_protocols(["h2", "http/1.1"])
        # The body as sent: a Web Push body says Content-Encoding aes128gcm, and the fake
        # decrypts it itself.
        self._http1 = web.Server(self._on_http1, access_log=None, auto_decompress=False)
        self._listener = await asyncio.get_running_loop().create_server(
            lambda: _Connection(self), "127.0.0.1", 0, ssl=context
        )
        self.port = self._listener.sockets[0].getsockname()[1]
        self.stopping = False

    def http1_protocol(self) -> asyncio.Protocol:
        assert self._http1 is not None
        return self._http1()

    def spawn(self, answer: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(answer)
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    def connection_made(self, connection: _Connection) -> None:
        self._connections.add(connection)
        assert connection.transport is not None
        self._by_transport[connection.transport] = connection

    def connection_lost(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        if connection.transport is not None:
            self._by_transport.pop(connection.transport, None)

    async def _on_http1(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        transport = request.transport
        connection = self._by_transport.get(transport) if transport is not None else None
        peer = connection.peer if connection is not None else ("", 0)
        if connection is not None:
            connection.taken += 1
        answer = await self.handler(
            Request(
                method=request.method,
                path=unquote(request.raw_path.partition("?")[0]),
                headers={
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.raw_headers
                },
                body=body,
                http_version=f"{request.version.major}.{request.version.minor}",
            ),
            peer,
        )
        response = web.Response(status=answer.status, body=answer.body, headers=answer.headers)
        if connection is not None and connection.taken >= self.requests_per_connection:
            response.force_close()  # answered with Connection: close, then closed
        return response

    async def stop(self) -> None:
        """Stops listening, lets the answers in progress finish (for a second at most: then
        they are cancelled) and closes the connections still open (HTTP/2: GOAWAY),
        aborting those not closed within a second."""
        self.stopping = True
        if self._listener is not None:
            self._listener.close()
        finishing = [self._finish_answers()]
        if self._http1 is not None:
            self._http1.pre_shutdown()  # idle keep-alive connections close now
            finishing.append(self._http1.shutdown(CLOSE_SECONDS))
        await asyncio.gather(*finishing)
        for connection in list(self._connections):
            connection.close()
        open_ones = [connection.lost for connection in self._connections]
        if open_ones:
            await asyncio.wait(open_ones, timeout=CLOSE_SECONDS)
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.abort()
        if open_ones:
            await asyncio.wait(open_ones, timeout=CLOSE_SECONDS)
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.wait_closed()

    async def _finish_answers(self) -> None:
        if not self._answering:
            return
        _, late = await asyncio.wait(set(self._answering), timeout=CLOSE_SECONDS)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


class FakeProvider(Started):
    """A provider's HTTP API on a local HTTPS server. Subclasses answer `handle(request)`.

    Test controls: `mark_dead(token)`, `start_outage(retry_after=...)`, `end_outage()`;
    readings: `pushes` (accepted), `auth_failures`, `requests`.
    """

    def __init__(self, tls: LocalTls, *, requests_per_connection: int = 1_000_000) -> None:
        self.tls = tls
        self.server = LocalHttpsServer(
            self._serve, tls, requests_per_connection=requests_per_connection
        )
        self.pushes: list[PushRecord] = []
        self.dead_tokens: set[str] = set()
        self.auth_failures = 0
        self.requests = 0
        self.http_versions: list[str] = []
        self.connections: set[tuple[str, int]] = set()  # client addresses seen
        self._outage: tuple[int, float | None] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    def mark_dead(self, token: str) -> None:
        """From now on `token` gets the provider's answer for an uninstalled app."""
        self.dead_tokens.add(token)

    def start_outage(self, *, retry_after: float | None = None, status: int = 503) -> None:
        """Push requests get `status` (with Retry-After when given) until `end_outage()`."""
        self._outage = (status, retry_after)

    def end_outage(self) -> None:
        self._outage = None

    def outage_answer(self) -> tuple[int, dict[str, str]] | None:
        """The status and headers of the outage going on, if one is."""
        if self._outage is None:
            return None
        status, retry_after = self._outage
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        return status, headers

    def record(self, push: PushRecord) -> None:
        self.pushes.append(push)

    def pushes_to(self, token: str) -> list[PushRecord]:
        return [push for push in self.pushes if push.token == token]

    async def handle(self, request: Request) -> Response:
        raise NotImplementedError

    async def _serve(self, request: Request, peer: Peer) -> Response:
        self.requests += 1
        self.http_versions.append(request.http_version)
        if peer[0]:
            self.connections.add(peer)
        return await self.handle(request)
