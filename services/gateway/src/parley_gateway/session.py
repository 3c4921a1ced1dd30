"""One WebSocket connection: who is on it, its sequence numbers, and how to write to it.

Kept small on purpose (20,000 idle connections per process): `__slots__`, no task of its
own (timeouts are checked by the gateway's one sweep), no protobuf objects held (but the
few device events that arrive between sign-in and Welcome). Writes never wait for the
client: one that stops reading is dropped once SEND_BUFFER_CAP of output waits for it.
"""

from __future__ import annotations

import asyncio
import secrets

from aiohttp import web

from parley.v1 import client_pb2, options_pb2
from parley_gateway.metrics import ABORTS, ERRORS, frames
from parley_protocol import framing
from parley_protocol.bodies import has_capability
from parley_protocol.errors import ParleyError
from parley_service.logs import get_logger

log = get_logger("parley.gateway.session")

AWAITING_HELLO = 0
ACTIVE = 1
CLOSING = 2

# Output a client has not read yet, beyond which it is dropped instead of written to: a
# client that stops reading must cost bounded memory and never stall a shared loop.
SEND_BUFFER_CAP = 512 * 1024
# The transport pauses writers (aiohttp then awaits) only above this; kept well over
# SEND_BUFFER_CAP + one frame, so a write never waits for a peer.
WRITE_BUFFER_HIGH = 1024 * 1024
# How long output may stay unread after the close frame before the connection is dropped.
CLOSE_LINGER_SECONDS = 2.0
# Device events kept for a session between its sign-in and its Welcome.
MAX_HELD_FRAMES = 64
# How long a resume's replay waits for a slow reader to take what was written before.
REPLAY_DRAIN_SECONDS = 5.0


def new_connection_id() -> str:
    """Unique per connection; URL-safe, so a valid NATS subject token and KV key part."""
    return secrets.token_urlsafe(12)


class Session:
    __slots__ = (
        "acked",
        "application_key",
        "capabilities",
        "connected_at_ms",
        "connection_id",
        "forwarding",
        "held",
        "in_seq",
        "instance_id",
        "last_event",
        "last_heard",
        "leaving",
        "listening",
        "opened_at",
        "out_seq",
        "refused",
        "session_id",
        "signed_in",
        "state",
        "taken_over",
        "token_digest",
        "token_expires_at_ms",
        "tokens",
        "tokens_at",
        "transport",
        "user_id",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        opened_at: float,
        burst: float,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.connection_id = new_connection_id()
        # The client session this connection carries (the connection's own id for now).
        self.session_id = self.connection_id
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
        self.token_digest = b""  # of the access token last verified (access_tokens.digest)
        # What the Hello announced, as a bit mask (parley_protocol.bodies.capability_mask).
        self.capabilities = 0
        self.listening = False
        self.forwarding = 0  # routed requests of this session waiting for their replies
        self.last_event = 0  # the highest event number sent in this session
        self.acked = 0  # the highest event number the client said it handled
        self.leaving = False  # said Goodbye: no resume, its presence goes at once
        self.taken_over = False  # resumed on another connection, which owns its presence
        self.signed_in = False  # routed and in presence: undone when the session ends
        # Device events that came between sign-in and Welcome; None once the Welcome is out.
        self.held: list[client_pb2.Envelope] | None = None
        # Frame rate limit: a token bucket (tokens left at monotonic time tokens_at), and the
        # frames refused since it was last full.
        self.tokens = float(burst)
        self.tokens_at = opened_at
        self.refused = 0

    @property
    def active(self) -> bool:
        return self.state == ACTIVE

    # What presence records of the device (see presence.Device).
    @property
    def calling(self) -> bool:
        return has_capability(self.capabilities, options_pb2.CAPABILITY_CALLING)

    @property
    def messaging(self) -> bool:
        return has_capability(self.capabilities, options_pb2.CAPABILITY_MESSAGING)

    @property
    def active_connection(self) -> bool:
        return has_capability(self.capabilities, options_pb2.CAPABILITY_ACTIVE_CONNECTION)

    @property
    def managed_push(self) -> bool:
        return has_capability(self.capabilities, options_pb2.CAPABILITY_MANAGED_PUSH)

    def admit(self, now: float, burst: float, rate: float) -> bool:
        """Take a token for one client frame; False (and one more refusal) when none is left."""
        tokens = min(burst, self.tokens + (now - self.tokens_at) * rate)
        self.tokens_at = now
        if tokens >= 1:
            if tokens >= burst:
                self.refused = 0  # calm long enough to refill: earlier excess is forgiven
            self.tokens = tokens - 1
            return True
        self.tokens = tokens
        self.refused += 1
        return False

    def hold(self, envelope: client_pb2.Envelope) -> bool:
        """Keep a device event until the Welcome is out; False when too many are waiting."""
        assert self.held is not None
        if len(self.held) >= MAX_HELD_FRAMES:
            return False
        self.held.append(envelope)
        return True

    async def release(self) -> None:
        """Write the device events held during sign-in, in order; events go straight out after."""
        while self.held:
            if not await self.send_event(self.held.pop(0)):
                break
        self.held = None

    async def send_event(self, envelope: client_pb2.Envelope) -> bool:
        """Write a device event unless its number shows the client has it already."""
        number = envelope.event
        if number:
            if number <= self.last_event:
                return True  # a replay and live delivery overlap: the client has this one
            self.last_event = number
        return await self.send(envelope)

    async def replay(self, events: list[client_pb2.Envelope]) -> bool:
        """Write the events a resume replays, in order, waiting (boundedly) for a client that
        reads slower than they come instead of dropping it; False if the connection went."""
        loop = asyncio.get_running_loop()
        for envelope in events:
            deadline = loop.time() + REPLAY_DRAIN_SECONDS
            # The transport's buffer level has no event to wait on: look again shortly.
            while self.buffered() > SEND_BUFFER_CAP // 2 and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            if not await self.send_event(envelope):
                return False
        return True

    def buffered(self) -> int:
        """Bytes written but not yet taken by the client."""
        return 0 if self.transport is None else self.transport.get_write_buffer_size()

    def abort(self, reason: str, log_it: bool = True) -> None:
        """Drop the connection at once (no closing handshake); its handler then cleans up."""
        self.state = CLOSING
        transport = self.transport
        if transport is None or (transport.is_closing() and not self.buffered()):
            return  # already gone
        ABORTS.labels(reason).inc()
        if log_it:
            log.warning(reason, connection=self.connection_id, buffered=self.buffered())
        transport.abort()

    async def send(self, envelope: client_pb2.Envelope) -> bool:
        """Number the frame and write it; False when the connection is gone or was dropped.

        Never waits for the client: one over SEND_BUFFER_CAP of unread output is dropped.
        """
        if self.ws.closed:
            return False
        if self.buffered() > SEND_BUFFER_CAP:
            self.abort("slow_consumer")
            return False
        self.out_seq += 1
        envelope.seq = self.out_seq
        try:
            await self.ws.send_bytes(framing.encode(envelope))
        except (ConnectionError, RuntimeError):
            return False
        frames("out", framing.body_name(envelope)).inc()
        return True

    async def ping(self) -> bool:
        """A WebSocket Ping, which the client answers with a Pong (it then counts as heard);
        False when it was not written."""
        return await self._control(ping=True)

    async def pong(self, data: bytes) -> None:
        """Answer the client's WebSocket Ping (a client may send them; ours need not)."""
        await self._control(ping=False, data=data)

    async def _control(self, ping: bool, data: bytes = b"") -> bool:
        """Never waits: skipped for a connection that is gone or not reading (the next send
        drops one not reading; the sweep, one silent). False when not written."""
        if self.ws.closed or self.buffered() > SEND_BUFFER_CAP:
            return False
        try:
            await (self.ws.ping(data) if ping else self.ws.pong(data))
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def send_error(self, err: ParleyError, reply_to: int = 0) -> bool:
        ERRORS.labels(err.code_name).inc()
        return await self.send(framing.error_envelope(err, reply_to))

    async def close(self, code: int, reason: str) -> None:
        """Close with `code` (a reason of at most 123 bytes goes in the close frame)."""
        self.state = CLOSING
        try:
            await self.ws.close(code=code, message=reason.encode()[:123])
        except (ConnectionError, RuntimeError):
            pass
        if self.buffered():
            # The close frame waits behind output the client has not read: give it a moment,
            # then drop the connection rather than keep its socket and buffer indefinitely.
            loop = asyncio.get_running_loop()
            loop.call_later(CLOSE_LINGER_SECONDS, self._abort_if_unread)

    def _abort_if_unread(self) -> None:
        if self.buffered():
            self.abort("close_timeout")

    async def fail(self, err: ParleyError, reply_to: int = 0, close_code: int = 0) -> None:
        """Send an Error frame; then, with `close_code`, close the connection with it."""
        await self.send_error(err, reply_to)
        if close_code:
            await self.close(close_code, err.code_name)
