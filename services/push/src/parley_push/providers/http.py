"""The one place that makes a provider's HTTP client, and sends a request through it with a
bound on the whole exchange and one new attempt when a reused connection was closed.

Each sender keeps one long-lived client (its connections, HTTP/2 streams and TLS sessions
are reused across sends). Trust is the system's CA store, or only the CA file given
(`PARLEY_PUSH_CA_FILE`: local provider servers in tests and closed networks).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import httpx

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


def provider_client(
    *,
    http2: bool,
    ca_file: str | Path | None = None,
    max_connections: int = MAX_CONNECTIONS,
) -> httpx.AsyncClient:
    """A client for one sender: HTTP/2 when asked (APNs requires it), connect timeout 5 s,
    10 s for each read and write (`post` bounds the whole exchange to 10 s), and a bounded
    connection pool."""
    return httpx.AsyncClient(
        http2=http2,
        verify=tls_context(ca_file),
        timeout=httpx.Timeout(TOTAL_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=60.0,
        ),
        follow_redirects=False,
        trust_env=False,
    )


# A reused connection the provider closed meanwhile (HTTP/2 GOAWAY, an idle connection
# reaped) fails the next request before any answer: sent again once, on a new connection.
# The request may, rarely, have reached the provider (the connection died after it was
# taken): the device then gets the push twice, which the payload's call or message ID lets
# it recognise.
_CONNECTION_LOST = (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError)


async def post(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """POST `url`, the whole exchange bounded by TOTAL_TIMEOUT_SECONDS, sent again once when
    a reused connection turns out closed; `Unreachable` when no answer came (never an httpx
    or socket error)."""
    try:
        async with asyncio.timeout(TOTAL_TIMEOUT_SECONDS):
            try:
                return await client.post(url, **kwargs)
            except _CONNECTION_LOST:
                return await client.post(url, **kwargs)
    except TimeoutError as exc:
        raise Unreachable(f"no answer within {TOTAL_TIMEOUT_SECONDS:g} s") from exc
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ssl.SSLError) as exc:
        detail = str(exc) or type(exc).__name__
        raise Unreachable(f"{type(exc).__name__}: {detail}") from exc
