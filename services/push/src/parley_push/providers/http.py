"""What the providers' HTTP clients share: their answer, their TLS trust and timeouts, and
`post`, which sends a request through one with a bound on the whole exchange and one new
attempt when a reused connection was closed.

Each sender keeps one long-lived client (its connections, HTTP/2 streams and TLS sessions
are reused across sends). Trust is the system's CA store, or only the CA file given
(`PARLEY_PUSH_CA_FILE`: local provider servers in tests and closed networks).

APNs accepts only HTTP/2 (`h2_client.H2Client`, the h2 state machine on an asyncio TLS
stream). FCM and Web Push take HTTP/1.1 too, which costs far less CPU per push than
pure-Python HTTP/2 (measured with bench/push.py), so they use `http1_client.Http1Client`.
Either way a sender gets an `Answer`.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

CONNECT_TIMEOUT_SECONDS = 5.0
TOTAL_TIMEOUT_SECONDS = 10.0


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
