"""One WebSocket connection: who is on it, its sequence numbers, and how to write to it.

Kept small on purpose (20,000 idle connections per process): `__slots__`, no task of its
own (timeouts are checked by the gateway's one sweep), no protobuf objects held.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from parley.v1 import client_pb2
from parley_gateway.metrics import ERRORS, FRAMES
from parley_protocol import framing
from parley_protocol.errors import ParleyError

AWAITING_HELLO = 0
ACTIVE = 1
CLOSING = 2


def new_connection_id() -> str:
    """Unique per connection; URL-safe, so a valid NATS subject token and KV key part."""
    return secrets.token_urlsafe(12)


class Session:
    __slots__ = (
        "application_key",
        "calling",
        "connected_at_ms",
        "connection_id",
        "in_seq",
        "instance_id",
        "last_heard",
        "listening",
        "messaging",
        "opened_at",
        "out_seq",
        "signed_in",
        "state",
        "token_expires_at_ms",
        "user_id",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, opened_at: float) -> None:
        self.ws = ws
        self.connection_id = new_connection_id()
        self.state = AWAITING_HELLO
        self.opened_at = opened_at  # monotonic
        self.last_heard = opened_at  # monotonic time of the last client frame
        self.in_seq = 0  # last client seq accepted
        self.out_seq = 0  # last server seq sent
        self.application_key = ""
        self.user_id = ""
        self.instance_id = ""
        self.connected_at_ms = 0
        self.token_expires_at_ms = 0
        self.calling = False
        self.messaging = False
        self.listening = False
        self.signed_in = False  # routed and in presence: undone when the session ends

    @property
    def active(self) -> bool:
        return self.state == ACTIVE

    async def send(self, envelope: client_pb2.Envelope) -> bool:
        """Number the frame and write it; False when the connection is already gone."""
        if self.ws.closed:
            return False
        self.out_seq += 1
        envelope.seq = self.out_seq
        try:
            await self.ws.send_bytes(framing.encode(envelope))
        except (ConnectionError, RuntimeError):
            return False
        FRAMES.labels("out", framing.body_name(envelope)).inc()
        return True

    async def send_error(self, err: ParleyError, reply_to: int = 0) -> bool:
        ERRORS.labels(err.code_name).inc()
        return await self.send(framing.error_envelope(err, reply_to))

    async def close(self, code: int, reason: str) -> None:
        """Close with `code` (a reason of at most 123 bytes goes in the close frame)."""
        if self.state != CLOSING:
            self.state = CLOSING
        try:
            await self.ws.close(code=code, message=reason.encode()[:123])
        except (ConnectionError, RuntimeError):
            pass

    async def fail(self, err: ParleyError, reply_to: int = 0, close_code: int = 0) -> None:
        """Send an Error frame; then, with `close_code`, close the connection with it."""
        await self.send_error(err, reply_to)
        if close_code:
            await self.close(close_code, err.code_name)
