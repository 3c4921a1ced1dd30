"""GET /v1/connect: the WebSocket session, frame by frame.

Every frame is checked before its message is handled: binary, at most
`framing.MAX_FRAME_BYTES`, a decodable `parley.v1.Envelope`, a seq above the last one, a
client message, and one the session's state allows. Each failure gets its own error
code (with reply_to = the frame's seq when known) and, where the session cannot go on,
its own close code. Whatever one client sends, the others are not affected.
"""

from __future__ import annotations

from aiohttp import WSMsgType, web

from parley.v1 import client_pb2
from parley_gateway.gateway import WS_CLOSE_TIMEOUT_SECONDS, Gateway
from parley_gateway.messages import HANDLERS
from parley_gateway.metrics import REFUSALS, frames
from parley_gateway.problems import problem_for
from parley_gateway.session import AWAITING_HELLO, CLOSING, WRITE_BUFFER_HIGH, Session
from parley_protocol import bodies, framing
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import tracing
from parley_service.logs import get_logger

log = get_logger("parley.gateway.ws")

# aiohttp itself refuses (close 1009) messages above this; between MAX_FRAME_BYTES and it,
# the client gets our FRAME_TOO_LARGE error frame first.
WS_MAX_MESSAGE_BYTES = framing.MAX_FRAME_BYTES * 4
PONGS_IN = frames("in", "websocket_pong")
PINGS_IN = frames("in", "websocket_ping")
# Frames refused for rate after which a session that does not slow down is closed.
MAX_REFUSED_FRAMES = 100


async def handle_connect(gateway: Gateway, request: web.Request) -> web.StreamResponse:
    """The WebSocket session of one connection, from the upgrade to its end.

    Awaited by aiohttp itself, with nothing in between (see HttpApi.application), so
    what it raises becomes its problem response here.
    """
    try:
        if gateway.draining:
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNAVAILABLE,
                "this gateway is restarting; connect again (another replica will answer)",
            )
        if gateway.full:
            REFUSALS.labels("max_connections").inc()
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNAVAILABLE,
                f"this gateway holds its limit of {gateway.settings.max_connections} connections; "
                "connect again (another replica will answer)",
            )
        ws = web.WebSocketResponse(
            max_msg_size=WS_MAX_MESSAGE_BYTES,
            compress=False,  # a deflate context per connection would cost far more than the rest
            # Pings and Pongs reach the loop below: a Pong answering the sweep's Ping is
            # what an idle client sends (Gateway.ping_idle).
            autoping=False,
            timeout=WS_CLOSE_TIMEOUT_SECONDS,
        )
        if not ws.can_prepare(request).ok:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                "GET /v1/connect takes a WebSocket upgrade (binary frames of parley.v1.Envelope)",
            )
        await ws.prepare(request)
        # The handshake's response headers are written and never read again, and would
        # stay as long as the session (about 300 bytes of each idle connection's 16 KiB).
        ws.headers.clear()
        if gateway.draining:  # the drain began during the upgrade and will not close this one
            await ws.close(
                code=framing.CLOSE_SERVICE_RESTART, message=b"gateway is restarting; reconnect"
            )
            return ws
        transport = request.transport
        if transport is not None:
            # Writes never wait for the client: Session.send drops one far below this mark.
            transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        session = gateway.opened(ws, transport)
        try:
            async for msg in ws:
                if session.state == CLOSING:
                    continue  # a close is under way (sweep or drain); the loop ends with it
                session.last_heard = gateway.clock.monotonic()
                if msg.type == WSMsgType.BINARY:
                    if not await on_frame(gateway, session, msg.data):
                        break
                elif msg.type == WSMsgType.PONG:
                    PONGS_IN.inc()  # heard (last_heard above): an idle client is there
                elif msg.type == WSMsgType.PING:
                    PINGS_IN.inc()
                    await session.pong(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    frames("in", "text").inc()
                    err = ParleyError(
                        ErrorCode.ERROR_CODE_BAD_FRAME,
                        "text frames are not part of the protocol; send binary parley.v1.Envelope",
                    )
                    await session.fail(err, 0, framing.CLOSE_BAD_FRAME)
                    break
                elif msg.type == WSMsgType.ERROR:
                    # aiohttp has already closed the connection (e.g. 1009 for a huge message).
                    frames("in", "invalid").inc()
                    break
        except Exception:
            log.exception("session_failed", connection=session.connection_id)
            err = ParleyError(ErrorCode.ERROR_CODE_INTERNAL, "internal error; reconnect")
            await session.fail(err, 0, framing.CLOSE_TRY_AGAIN_LATER)
        finally:
            await gateway.closed(session)
        return ws
    except Exception as exc:
        return problem_for(request, exc)


async def on_frame(gateway: Gateway, session: Session, data: bytes) -> bool:
    """Check one binary frame and handle its message; False once the session is closed."""
    try:
        envelope = framing.decode(data)
    except ParleyError as exc:
        if exc.code != ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE:
            frames("in", "invalid").inc()
            close = (
                framing.CLOSE_TOO_LARGE
                if exc.code == ErrorCode.ERROR_CODE_FRAME_TOO_LARGE
                else framing.CLOSE_BAD_FRAME
            )
            await session.fail(exc, 0, close)
            return False
        # Decodable; only its body is unknown. Parse it again to answer with its seq.
        envelope = client_pb2.Envelope.FromString(data)
    body = framing.body_name(envelope)
    frames("in", body or "unknown").inc()
    seq = envelope.seq
    s = gateway.settings
    if not session.admit(gateway.clock.monotonic(), s.session_frame_burst, s.session_frame_rate):
        REFUSALS.labels("frame_rate").inc()
        err = ParleyError(
            ErrorCode.ERROR_CODE_RATE_LIMITED,
            f"over {s.session_frame_rate:g} frames a second (bursts of "
            f"{s.session_frame_burst}); the frame was ignored",
        )
        if session.refused >= MAX_REFUSED_FRAMES:
            await session.fail(err, seq, framing.CLOSE_RATE_LIMITED)
            return False
        await session.send_error(err, seq)
        return True
    if seq <= session.in_seq:
        err = ParleyError(
            ErrorCode.ERROR_CODE_BAD_SEQUENCE,
            f"frame seq {seq} is not greater than the last one, {session.in_seq}; "
            "the frame was ignored",
        )
        await session.send_error(err, seq)
        return True
    session.in_seq = seq
    if envelope.ack > session.acked:  # the client handled events up to this one
        session.acked = envelope.ack
    if body not in bodies.CLIENT_BODIES:
        what = f"{body!r} is a server message" if body else "the frame carries no known message"
        err = ParleyError(
            ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE, f"{what}; clients send {_client_bodies()}"
        )
        if session.state == AWAITING_HELLO:
            await session.fail(err, seq, framing.CLOSE_UNAUTHENTICATED)
            return False
        await session.send_error(err, seq)
        return True
    if session.state == AWAITING_HELLO and body != "hello":
        err = ParleyError(
            ErrorCode.ERROR_CODE_WRONG_STATE, f"the first frame must be a Hello, not {body}"
        )
        await session.fail(err, seq, framing.CLOSE_UNAUTHENTICATED)
        return False
    if session.state != AWAITING_HELLO and body == "hello":
        err = ParleyError(ErrorCode.ERROR_CODE_WRONG_STATE, "this session has already said Hello")
        await session.send_error(err, seq)
        return True
    try:
        route = bodies.ROUTES.get(body)
        if route is not None:  # to the body's service, without waiting (traced there)
            await gateway.forwarder.forward(session, envelope, route)
            return True
        with tracing.frame_span("parley.gateway", f"frame {body}", envelope.traceparent):
            return await HANDLERS[body](gateway, session, envelope)
    except ParleyError as exc:
        await session.send_error(exc, seq)
        return True


def _client_bodies() -> str:
    return ", ".join(sorted(bodies.CLIENT_BODIES))
