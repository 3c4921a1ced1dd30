"""A lean HTTP/1.1 client for the providers that take HTTP/1.1 (FCM, Web Push): keep-alive
TLS connections, one request at a time on each, a bounded pool per origin.

It does what a push needs and no more: POST a small body, read the status, headers and a
small answer (Content-Length, chunked, or up to the end of the connection). aiohttp's
client does the same through several layers (request and response objects, payload
writers, timers, tracing hooks) and cost about three times the CPU per request here
(measured with bench/push.py). A reused connection found closed before any byte of the
answer came fails with `ConnectionLost` (the caller sends again once, on a new one).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from parley_push.providers.http import (
    CONNECT_TIMEOUT_SECONDS,
    TOTAL_TIMEOUT_SECONDS,
    Answer,
    tls_context,
)

# A connection idle this long is not reused (servers reap idle connections; a request on
# one being closed would have to be sent again).
IDLE_SECONDS = 50.0
# The largest answer head and body read (push answers are small).
MAX_HEAD_BYTES = 65_536
MAX_BODY_BYTES = 1_048_576


class ConnectionLost(ConnectionError):
    """The connection ended before any byte of the answer came (safe to send again once)."""


class BadAnswer(ValueError):
    """The server's answer is not HTTP/1.1 this client reads."""


@lru_cache(maxsize=4096)
def _target(url: str) -> tuple[str, int, str, str]:
    """(host, port, the Host header, the request target) of an https URL."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"not an https URL: {url!r}")
    port = parts.port or 443
    host_header = parts.hostname if port == 443 else f"{parts.hostname}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, host_header, path


class _Connection(asyncio.Protocol):
    """One TLS connection; `request` sends and waits for the whole answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = time.monotonic()
        self._buffer = bytearray()
        self._answer: asyncio.Future[Answer] | None = None
        self._got_bytes = False

    # asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self.close()  # bytes nobody asked for: the connection is out of step
            return
        self._got_bytes = True
        self._buffer += data
        try:
            answer = _parse(self._buffer, eof=False)
        except BadAnswer as exc:
            self._fail(exc)
            return
        if answer is not None:
            self._answer.set_result(answer)

    def eof_received(self) -> bool | None:
        self._end(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)

    # -------------------------------------------------------------------------------

    def _end(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is None or self._answer.done():
            return
        if not self._got_bytes:
            self._fail(ConnectionLost(f"the connection closed before the answer ({exc})"))
            return
        try:
            answer = _parse(self._buffer, eof=True)
        except BadAnswer as bad:
            self._fail(bad)
            return
        if answer is None:
            self._fail(BadAnswer("the connection closed in the middle of the answer"))
        else:
            self._answer.set_result(answer)

    def _fail(self, exc: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)
        self.close()

    async def request(self, head: bytes, body: bytes) -> Answer:
        if self.closed or self.transport is None:
            raise ConnectionLost("the connection is closed")
        self._buffer.clear()
        self._got_bytes = False
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(head + body)
        answer = await self._answer
        self._answer = None
        if answer.headers.get("connection", "").lower() == "close":
            self.close()
        self.idle_since = time.monotonic()
        return answer

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _parse(buffer: bytearray, eof: bool) -> Answer | None:
    """The answer in `buffer` once it is whole (None until then); 1xx answers skipped."""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise BadAnswer("the answer's head is too long")
            return None
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise BadAnswer(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise BadAnswer(f"not a header line: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:  # an interim answer: the real one follows
            del buffer[: end + 4]
            continue
        body = _body(buffer, end + 4, headers, eof)
        if body is None:
            return None
        return Answer(status, headers, body)


def _body(buffer: bytearray, start: int, headers: dict[str, str], eof: bool) -> bytes | None:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _chunked(buffer, start)
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise BadAnswer(f"bad Content-Length {length[:20]!r}")
        if len(buffer) - start < int(length):
            return None
        return bytes(buffer[start : start + int(length)])
    # Neither: the body runs to the end of the connection.
    if len(buffer) - start > MAX_BODY_BYTES:
        raise BadAnswer("the answer is too long")
    return bytes(buffer[start:]) if eof else None


def _chunked(buffer: bytearray, start: int) -> bytes | None:
    body = bytearray()
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadAnswer(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:  # the last chunk: then trailer lines, each ending CRLF, and CRLF
            if buffer[line_end : line_end + 4] == b"\r\n\r\n":
                return bytes(body)
            return None if buffer.find(b"\r\n\r\n", line_end + 2) < 0 else bytes(body)
        if len(buffer) < line_end + 2 + size + 2:
            return None
        body += buffer[line_end + 2 : line_end + 2 + size]
        if len(body) > MAX_BODY_BYTES:
            raise BadAnswer("the answer is too long")
        at = line_end + 2 + size + 2


class Http1Client:
    """Keep-alive connections per origin, at most `max_connections` open to each."""

    connect_timeout = CONNECT_TIMEOUT_SECONDS
    total_timeout = TOTAL_TIMEOUT_SECONDS
    lost: tuple[type[BaseException], ...] = (ConnectionLost,)
    errors: tuple[type[BaseException], ...] = (OSError, ssl.SSLError, ValueError)

    def __init__(self, ca_file: str | Path | None = None, max_connections: int = 100) -> None:
        self._context = tls_context(ca_file)
        self._context.set_alpn_protocols(["http/1.1"])
        self._limit = max_connections
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._slots: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._open: set[_Connection] = set()

    async def post(self, url: str, **kwargs: Any) -> Answer:
        """POST `content` (bytes or text) or `data` (a form) with `headers` to an https
        URL."""
        headers: dict[str, str] = kwargs.pop("headers", None) or {}
        content: bytes | str = kwargs.pop("content", b"")
        form: dict[str, str] | None = kwargs.pop("data", None)
        if kwargs:
            raise TypeError(
                f"Http1Client.post takes content, data and headers, not {sorted(kwargs)}"
            )
        if form is not None:
            content = urlencode(form)
            headers = {"content-type": "application/x-www-form-urlencoded", **headers}
        body = content.encode() if isinstance(content, str) else content
        host, port, host_header, path = _target(url)
        lines = [f"POST {path} HTTP/1.1", f"host: {host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"content-length: {len(body)}\r\n\r\n")
        head = "\r\n".join(lines).encode("latin-1")
        key = (host, port)
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(self._limit)
        async with slots:
            connection = await self._connection(key)
            try:
                answer = await connection.request(head, body)
            except BaseException:
                connection.close()  # mid-request: its state is unknown
                self._open.discard(connection)
                raise
            if connection.closed:
                self._open.discard(connection)
            else:
                self._idle.setdefault(key, deque()).append(connection)
            return answer

    async def _connection(self, key: tuple[str, int]) -> _Connection:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the warmest
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
            self._open.discard(connection)
        host, port = key
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            _, connection = await loop.create_connection(
                _Connection, host, port, ssl=self._context, server_hostname=host
            )
        self._open.add(connection)
        return connection

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports close
