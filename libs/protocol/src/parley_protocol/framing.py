"""Client protocol framing: one `Envelope` per WebSocket binary frame."""

from __future__ import annotations

from google.protobuf.message import DecodeError

from parley.v1 import client_pb2
from parley_protocol.errors import ErrorCode, ParleyError

# Largest frame either side may send. Messages and push data are far smaller.
MAX_FRAME_BYTES = 64 * 1024

# Bodies a client may send; everything else in the oneof is server -> client.
CLIENT_BODIES = frozenset({"hello", "ping", "refresh_token", "presence_query", "goodbye", "listen"})
SERVER_BODIES = frozenset(
    {"welcome", "pong", "error", "presence_result", "token_accepted", "listen_accepted"}
)

# WebSocket close codes the gateway uses (4xxx: application-defined, after HTTP statuses).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_LARGE = 1009
CLOSE_SERVICE_RESTART = 1012  # the gateway is draining: reconnect, to another replica
CLOSE_TRY_AGAIN_LATER = 1013  # a passing failure (a dependency is down): reconnect after a pause
CLOSE_BAD_FRAME = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TIMEOUT = 4408


def encode(envelope: client_pb2.Envelope) -> bytes:
    return envelope.SerializeToString()


def decode(data: bytes) -> client_pb2.Envelope:
    """Decode one frame, or raise ParleyError(BAD_FRAME / FRAME_TOO_LARGE / UNKNOWN_MESSAGE)."""
    if len(data) > MAX_FRAME_BYTES:
        raise ParleyError(
            ErrorCode.ERROR_CODE_FRAME_TOO_LARGE,
            f"frame of {len(data)} bytes is over the limit of {MAX_FRAME_BYTES} bytes",
        )
    envelope = client_pb2.Envelope()
    try:
        envelope.ParseFromString(data)
    except DecodeError as exc:
        raise ParleyError(
            ErrorCode.ERROR_CODE_BAD_FRAME, f"frame is not a parley.v1.Envelope: {exc}"
        ) from exc
    if envelope.WhichOneof("body") is None:
        raise ParleyError(
            ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE,
            "frame carries no message this protocol version knows",
        )
    return envelope


def body_name(envelope: client_pb2.Envelope) -> str:
    return envelope.WhichOneof("body") or ""


def error_envelope(err: ParleyError, reply_to: int = 0) -> client_pb2.Envelope:
    return client_pb2.Envelope(reply_to=reply_to, error=err.to_proto())
