"""A lean HTTP/2 client for providers that speak only HTTP/2 (APNs): the `h2` state machine
on an asyncio TLS stream, one connection per origin, many requests multiplexed on it.

It does what a push needs and no more: POST a small body, read the status, headers and a
small answer. httpx does the same through several layers of pure-Python abstraction and
costs about twice the CPU per request (measured with bench/push.py); this keeps the cost
to h2's framing. A connection the server closes (GOAWAY, a reset, EOF) fails its requests
in flight with `ConnectionLost` at once (the caller sends each again once), and the next
request opens a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import hpack

from parley_push.providers.http import (
    CONNECT_TIMEOUT_SECONDS,
    TOTAL_TIMEOUT_SECONDS,
    Answer,
    tls_context,
)

READ_BYTES = 65_536
# Requests in flight on one connection when the server sets no lower limit.
MAX_STREAMS = 500


# Headers whose value changes from one request to the next: sent as literals never indexed,
# since adding each to the HPACK table only evicts what repeats (the method, the authority,
# the provider token, the topic) and makes every lookup in the table longer.
ALWAYS_NEW = frozenset({":path", "content-length"})


class _PlainEncoder(hpack.Encoder):
    """HPACK without Huffman coding (a push's headers are a few hundred bytes, and coding
    them in pure Python cost more CPU than the bytes it saves are worth), and with the
    headers named in `unindexed` never indexed."""

    def __init__(self, unindexed: frozenset[str]) -> None:
        super().__init__()
        self._unindexed = unindexed

    def encode(self, headers: Any, huffman: bool = False) -> bytes:
        return super().encode(
            [
                hpack.NeverIndexedHeaderTuple(name, value)
                if name in self._unindexed
                else (name, value)
                for name, value in headers
            ],
            huffman=False,
        )


class ConnectionLost(ConnectionError):
    """The connection ended before the answer came (it is safe to send again once)."""


@dataclass
class _Stream:
    done: asyncio.Future[Answer]
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)


class _Connection:
    def __init__(
        self, host: str, port: int, context: ssl.SSLContext, unindexed: frozenset[str]
    ) -> None:
        self.host, self.port = host, port
        self.authority = host if port == 443 else f"{host}:{port}"
        self._context = context
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding="utf-8",
                # The headers sent are made here, lower case and clean: h2 need not check
                # and normalise each of them again.
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self._h2.encoder = _PlainEncoder(unindexed)
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._streams: dict[int, _Stream] = {}
        # Requests waiting for the server's MAX_CONCURRENT_STREAMS (APNs starts at 1) or for
        # room in the connection's flow-control window: woken when a stream ends, the server
        # opens the window or changes its settings, or the connection closes.
        self._waiting: deque[tuple[asyncio.Future[None], int]] = deque()  # (waiter, body size)
        self.closed = False

    async def open(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.host, self.port, ssl=self._context, server_hostname=self.host
            ),
            CONNECT_TIMEOUT_SECONDS,
        )
        tls = writer.get_extra_info("ssl_object")
        if tls is None or tls.selected_alpn_protocol() != "h2":
            writer.close()
            raise ConnectionLost(f"{self.authority} did not agree to HTTP/2 (ALPN)")
        self._writer = writer
        self._h2.initiate_connection()
        self._flush()
        self._reader_task = asyncio.create_task(self._read(reader))

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._writer is not None:
            self._writer.write(data)

    def _stream_room(self) -> int:
        limit = min(self._h2.remote_settings.max_concurrent_streams, MAX_STREAMS)
        return limit - len(self._streams)  # h2's open_outbound_streams goes through them all

    def _has_room(self, body: bytes) -> bool:
        """A stream may open now, and its body fits the connection's window: a request beyond
        either waits (many pushes at once spend the default 64 KiB window until the server
        says it read them), rather than failing and being retried a second later."""
        return self.closed or (
            self._stream_room() > 0 and len(body) <= self._h2.outbound_flow_control_window
        )

    def _wake(self) -> None:
        """Wake the waiting requests that fit now, first come first: not all of them at each
        window update (hundreds may wait, and most would only wait again)."""
        if self.closed:
            waiting, self._waiting = self._waiting, deque()
            for waiter, _ in waiting:
                if not waiter.done():
                    waiter.set_result(None)
            return
        streams, window = self._stream_room(), self._h2.outbound_flow_control_window
        while self._waiting and streams > 0:
            waiter, size = self._waiting[0]
            if not waiter.done():
                if size > window:
                    break
                waiter.set_result(None)
                streams, window = streams - 1, window - size
            self._waiting.popleft()

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if len(body) > min(self._h2.max_outbound_frame_size, 16_384):
            raise ValueError(f"a body of {len(body)} bytes is more than one HTTP/2 frame")
        while not self._has_room(body):
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append((waiter, len(body)))
            await waiter
        if self.closed:
            raise ConnectionLost(f"the connection to {self.authority} is closed")
        stream_id = self._h2.get_next_available_stream_id()
        sent = [
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", self.authority),
            (":path", path),
            ("content-length", str(len(body))),
            *((name.lower(), value) for name, value in headers.items()),
        ]
        stream = _Stream(asyncio.get_running_loop().create_future())
        self._streams[stream_id] = stream
        try:
            self._h2.send_headers(stream_id, sent, end_stream=not body)
            if body:
                self._h2.send_data(stream_id, body, end_stream=True)
            self._flush()
            return await stream.done
        finally:
            self._streams.pop(stream_id, None)
            if self._waiting:
                self._wake()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        reason = "the server closed the connection"
        try:
            while True:
                data = await reader.read(READ_BYTES)
                if not data:
                    break
                try:
                    events = self._h2.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    reason = f"HTTP/2 protocol error: {exc}"
                    break
                going_away = False
                for event in events:
                    going_away = self._on(event) or going_away
                self._flush()
                if going_away:
                    reason = "the server sent GOAWAY"
                    break
        except (OSError, ssl.SSLError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self._close(reason)

    def _on(self, event: h2.events.Event) -> bool:
        """Apply one event; True when the server is closing the connection."""
        if isinstance(event, h2.events.ResponseReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                for name, value in event.headers:
                    key, text = str(name), str(value)
                    if key == ":status":
                        stream.status = int(text)
                    else:
                        stream.headers[key] = text
        elif isinstance(event, h2.events.DataReceived):
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.body += event.data
        elif isinstance(event, h2.events.StreamEnded):
            stream = self._streams.get(event.stream_id)
            if stream is not None and not stream.done.done():
                stream.done.set_result(Answer(stream.status, stream.headers, bytes(stream.body)))
        elif isinstance(event, h2.events.StreamReset):
            stream = self._streams.get(event.stream_id)
            if stream is not None and not stream.done.done():
                stream.done.set_exception(
                    ConnectionLost(f"the server reset the stream (error {event.error_code})")
                )
        elif isinstance(event, h2.events.RemoteSettingsChanged | h2.events.WindowUpdated):
            self._wake()
        elif isinstance(event, h2.events.ConnectionTerminated):
            # Requests still unanswered are sent again on a new connection, at once: a
            # server closing may never answer the last streams it took (a push may then
            # arrive twice, which its call or message id tells), and waiting for it to
            # close the socket would hold them for seconds.
            self.closed = True
            return True
        return False

    def _close(self, reason: str) -> None:
        self.closed = True
        self._wake()
        for stream in self._streams.values():
            if not stream.done.done():
                stream.done.set_exception(ConnectionLost(reason))
        if self._writer is not None:
            self._writer.close()

    async def aclose(self) -> None:
        self.closed = True
        if self._writer is not None and not self._writer.is_closing():
            with contextlib.suppress(Exception):
                self._h2.close_connection()
                self._flush()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
        if self._writer is not None:
            self._writer.close()


class H2Client:
    """One HTTP/2 connection per origin, made on first use and again after it closes."""

    connect_timeout = CONNECT_TIMEOUT_SECONDS
    total_timeout = TOTAL_TIMEOUT_SECONDS
    lost: tuple[type[BaseException], ...] = (ConnectionLost,)
    errors: tuple[type[BaseException], ...] = (
        OSError,
        ssl.SSLError,
        h2.exceptions.ProtocolError,
        ValueError,
    )

    def __init__(
        self, ca_file: str | Path | None = None, always_new: frozenset[str] = frozenset()
    ) -> None:
        """`always_new`: the names of headers whose value changes with each request (never
        indexed, as :path and content-length are)."""
        self._unindexed = ALWAYS_NEW | always_new
        self._context = tls_context(ca_file)
        self._context.set_alpn_protocols(["h2"])
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._opening: dict[tuple[str, int], asyncio.Lock] = {}

    async def _connection(self, host: str, port: int) -> _Connection:
        key = (host, port)
        connection = self._connections.get(key)
        if connection is not None and not connection.closed:
            return connection
        async with self._opening.setdefault(key, asyncio.Lock()):
            connection = self._connections.get(key)
            if connection is None or connection.closed:
                connection = _Connection(host, port, self._context, self._unindexed)
                await connection.open()
                self._connections[key] = connection
            return connection

    async def post(self, url: str, **kwargs: Any) -> Answer:
        """POST `content` (bytes or text) with `headers` to an https URL."""
        content: bytes | str = kwargs.pop("content", b"")
        headers: dict[str, str] = kwargs.pop("headers", None) or {}
        if kwargs:
            raise TypeError(f"H2Client.post takes content and headers, not {sorted(kwargs)}")
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"not an https URL: {url!r}")
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = content.encode() if isinstance(content, str) else content
        connection = await self._connection(parts.hostname, parts.port or 443)
        return await connection.post(path or "/", headers, body)

    async def aclose(self) -> None:
        for connection in self._connections.values():
            await connection.aclose()
        self._connections.clear()
