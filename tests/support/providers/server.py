"""What the local provider servers share: serving an ASGI app over TLS on 127.0.0.1 with
hypercorn (HTTP/2 and HTTP/1.1, chosen by ALPN), the requests and answers of a fake, and
the state a test steers (dead tokens, an outage) and reads (accepted pushes, auth failures).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import socket
import ssl
import time
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from tests.support.lifecycle import Started
from tests.support.providers.tls import LocalTls

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


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
    path: str
    headers: dict[str, str]
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


class LocalHttpsServer:
    """Serves an ASGI app over TLS on a free port of 127.0.0.1 until `stop()`."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        tls: LocalTls,
        *,
        requests_per_connection: int = 1_000_000,
    ) -> None:
        self._app = app
        self._tls = tls
        self._requests_per_connection = requests_per_connection
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the socket from here
        config.certfile = str(self._tls.cert_file)
        config.keyfile = str(self._tls.key_file)
        config.alpn_protocols = ["h2", "http/1.1"]
        config.graceful_timeout = 1.0
        config.h2_max_concurrent_streams = 1000
        # After this many requests a connection is closed (HTTP/2: GOAWAY), as real
        # providers do now and then.
        config.keep_alive_max_requests = self._requests_per_connection
        config.errorlog = logging.getLogger("tests.providers.server")
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(
            serve(self._app, config, shutdown_trigger=self._stopping.wait, mode="asgi")  # type: ignore[arg-type]
        )
        await self._wait_until_serving()

    async def _wait_until_serving(self) -> None:
        context = ssl.create_default_context(cafile=str(self._tls.ca_file))
        deadline = time.monotonic() + 10.0
        while True:
            assert self._task is not None
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the provider server stopped at start")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port, ssl=context)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.02)
                continue
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
            return

    async def stop(self) -> None:
        """Stops serving. Clients should close their connections first: hypercorn waits up
        to a second for open ones, then stops anyway (and may say so with an
        InvalidStateError, ignored here)."""
        self._stopping.set()
        if self._task is not None:
            task, self._task = self._task, None
            try:
                await asyncio.wait_for(task, 10.0)
            except (TimeoutError, asyncio.InvalidStateError, ssl.SSLError, OSError):
                pass  # hypercorn's shutdown of connections a client left open
        # Connections hypercorn closed abruptly (after requests_per_connection) leave
        # coroutines it never awaited: collect them here rather than warn at a later test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gc.collect()


class FakeProvider(Started):
    """A provider's HTTP API on a local HTTPS server. Subclasses answer `handle(request)`.

    Test controls: `mark_dead(token)`, `start_outage(retry_after=...)`, `end_outage()`;
    readings: `pushes` (accepted), `auth_failures`, `requests`.
    """

    def __init__(self, tls: LocalTls, *, requests_per_connection: int = 1_000_000) -> None:
        self.tls = tls
        self.server = LocalHttpsServer(
            self._asgi, tls, requests_per_connection=requests_per_connection
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

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        request = Request(
            method=scope["method"],
            path=scope["path"],
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body=b"".join(chunks),
            http_version=scope["http_version"],
        )
        self.requests += 1
        self.http_versions.append(request.http_version)
        if scope.get("client"):
            host, port = scope["client"]
            self.connections.add((host, port))
        response = await self.handle(request)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": response.body})
