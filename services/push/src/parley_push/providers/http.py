"""The one place that makes a provider's HTTP client, and sends a request through it with a
bound on the whole exchange and one new attempt when a reused connection was closed.

Each sender keeps one long-lived client (its connections, HTTP/2 streams and TLS sessions
are reused across sends). Trust is the system's CA store, or only the CA file given
(`PARLEY_PUSH_CA_FILE`: local provider servers in tests and closed networks).

APNs accepts only HTTP/2 (`h2_client.H2Client`, the h2 state machine on an asyncio TLS
stream). FCM and Web Push take HTTP/1.1 too, and there aiohttp's keep-alive pool costs
about half the CPU of pure-Python HTTP/2 per push (measured with bench/push.py), so they use
it. Either way a sender gets an `Answer`.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

CONNECT_TIMEOUT_SECONDS = 5.0
TOTAL_TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 100


class Unreachable(Exception):
    """No answer from the provider: connection refused or lost, TLS failure, timeout."""


def tls_context(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """Verifying TLS: trusting only `ca_file` when given, else the system's CAs."""
    if ca_file is None or str(ca_file) == "":
        return ssl.create_default_context()
    path = Path(ca_file)
    if not path.is_file():
        raise ValueError(f"CA file {path} does not exist")
    return ssl.create_default_context(cafile=str(path))


@dataclass(frozen=True)
class Answer:
    """A provider's answer: status, headers (names lower case) and body."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class ProviderClient(Protocol):
    connect_timeout: float
    total_timeout: float

    async def post(self, url: str, **kwargs: Any) -> Answer: ...

    async def aclose(self) -> None: ...


class _Http1Client:
    """aiohttp's keep-alive pool over HTTP/1.1: FCM and Web Push."""

    connect_timeout = CONNECT_TIMEOUT_SECONDS
    total_timeout = TOTAL_TIMEOUT_SECONDS

    lost = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
    errors = (aiohttp.ClientError, OSError, ssl.SSLError, ValueError)

    def __init__(self, ca_file: str | Path | None, max_connections: int) -> None:
        self._ssl = tls_context(ca_file)
        self._limit = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on the event loop that uses it
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._limit, ssl=self._ssl, keepalive_timeout=60.0
                ),
                timeout=aiohttp.ClientTimeout(
                    total=TOTAL_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS
                ),
                trust_env=False,
                auto_decompress=True,
            )
        return self._session

    async def post(self, url: str, **kwargs: Any) -> Answer:
        if "content" in kwargs:
            kwargs["data"] = kwargs.pop("content")
        async with self._open().post(url, allow_redirects=False, **kwargs) as response:
            body = await response.read()
            return Answer(
                response.status, {k.lower(): v for k, v in response.headers.items()}, body
            )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def provider_client(
    *, ca_file: str | Path | None = None, max_connections: int = MAX_CONNECTIONS
) -> ProviderClient:
    """A client for one HTTP/1.1 sender (FCM, Web Push): keep-alive, connect timeout 5 s,
    the whole exchange at most 10 s (`post`), and a bounded connection pool. APNs, which
    speaks only HTTP/2, has `h2_client.H2Client`."""
    return _Http1Client(ca_file, max_connections)


# A reused connection the provider closed meanwhile (HTTP/2 GOAWAY, an idle connection
# reaped) fails the next request before any answer: sent again once, on a new connection.
# The request may, rarely, have reached the provider (the connection died after it was
# taken): the device then gets the push twice, which the payload's call or message ID lets
# it recognise.


async def post(client: ProviderClient, url: str, **kwargs: Any) -> Answer:
    """POST `url`, the whole exchange bounded by TOTAL_TIMEOUT_SECONDS, sent again once when
    a reused connection turns out closed; `Unreachable` when no answer came (never an HTTP
    library's or a socket's error)."""
    lost: tuple[type[BaseException], ...] = getattr(client, "lost", ())
    errors: tuple[type[BaseException], ...] = getattr(client, "errors", (OSError,))
    try:
        async with asyncio.timeout(TOTAL_TIMEOUT_SECONDS):
            try:
                return await client.post(url, **kwargs)
            except lost:
                return await client.post(url, **kwargs)
    except TimeoutError as exc:
        raise Unreachable(f"no answer within {TOTAL_TIMEOUT_SECONDS:g} s") from exc
    except errors as exc:
        detail = str(exc) or type(exc).__name__
        raise Unreachable(f"{type(exc).__name__}: {detail}") from exc
