"""Client protocol framing: one `Envelope` per WebSocket binary frame."""

from __future__ import annotations

from google.protobuf.message import DecodeError

from parley.v1 import client_pb2
from parley_protocol.errors import ErrorCode, ParleyError

# Largest frame either side may send: room for an instant message at its default limits (a
# 64 KiB text, ten recipients, 1 KiB of headers) with its envelope; the rest is far smaller.
MAX_FRAME_BYTES = 128 * 1024
# Largest encoded envelope a device event may carry: a session numbers it (seq: a tag and
# up to a 10-byte varint) before it goes out.
MAX_EVENT_BYTES = MAX_FRAME_BYTES - 11


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
CLOSE_TAKEN_OVER = 4409  # the session was resumed on another connection
CLOSE_RATE_LIMITED = 4429

# Both halves of the close-code contract, here so the gateway and clients agree.
# Errors that mean "try again later", not "you may not": the session closes with 1013.
_TRANSIENT = frozenset(
    {
        ErrorCode.ERROR_CODE_UNAVAILABLE,
        ErrorCode.ERROR_CODE_TIMEOUT,
        ErrorCode.ERROR_CODE_INTERNAL,
    }
)
# What a 4xxx (or 1009) close means when no Error frame came before it.
_CLOSE_ERRORS: dict[int, int] = {
    CLOSE_TOO_LARGE: ErrorCode.ERROR_CODE_FRAME_TOO_LARGE,
    CLOSE_BAD_FRAME: ErrorCode.ERROR_CODE_BAD_FRAME,
    CLOSE_UNAUTHENTICATED: ErrorCode.ERROR_CODE_UNAUTHENTICATED,
    CLOSE_FORBIDDEN: ErrorCode.ERROR_CODE_PERMISSION_DENIED,
    CLOSE_TIMEOUT: ErrorCode.ERROR_CODE_HEARTBEAT_TIMEOUT,
    CLOSE_RATE_LIMITED: ErrorCode.ERROR_CODE_RATE_LIMITED,
}
# Closes after which a client simply reconnects, whatever Error frames came before (after
# CLOSE_TAKEN_OVER without asking to resume: its session lives on another connection).
RECONNECT_CLOSES = frozenset(
    {
        CLOSE_NORMAL,
        CLOSE_GOING_AWAY,
        CLOSE_SERVICE_RESTART,
        CLOSE_TRY_AGAIN_LATER,
        CLOSE_TAKEN_OVER,
    }
)


def close_code_for(code: int) -> int:
    """The close code a session ends with when it fails with error `code` at sign-in."""
    if code in _TRANSIENT:
        return CLOSE_TRY_AGAIN_LATER
    if code in (ErrorCode.ERROR_CODE_PERMISSION_DENIED, ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT):
        return CLOSE_FORBIDDEN
    return CLOSE_UNAUTHENTICATED


def error_for_close(close_code: int) -> int | None:
    """The error a close code stands for, or None for a plain "reconnect" close."""
    return _CLOSE_ERRORS.get(close_code)


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
