"""Validation rules of the guide, each failing with a specific `ParleyError`."""

from __future__ import annotations

import re

from parley_protocol.errors import ErrorCode, ParleyError

MAX_USER_ID_LENGTH = 40
MAX_CONFERENCE_ID_LENGTH = 64
MAX_PUSH_DATA_BYTES = 1024

_APP_KEY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_E164 = re.compile(r"\+[0-9]{8,15}")
# user@host[:port]: the user part in SIP URI characters (RFC 3261 unreserved, user-unreserved
# and escapes), the host a name, an IPv4 or a bracketed IPv6 address.
_SIP_IDENTITY = re.compile(
    r"[A-Za-z0-9\-_.!~*'()&=+$,/%]+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
# A SIP header name is a token (RFC 3261).
_SIP_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


def validate_user_id(user_id: str, field: str = "user_id") -> str:
    """Printable ASCII (0x20-0x7e), 1 to 40 characters."""
    if not user_id:
        raise ParleyError(ErrorCode.ERROR_CODE_INVALID_USER_ID, "user ID is empty", field)
    if len(user_id) > MAX_USER_ID_LENGTH:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_USER_ID,
            f"user ID is {len(user_id)} characters long; the limit is {MAX_USER_ID_LENGTH}",
            field,
        )
    for index, char in enumerate(user_id):
        if not " " <= char <= "~":
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_USER_ID,
                f"user ID has a character that is not printable ASCII ({char!r} at "
                f"position {index})",
                field,
            )
    return user_id


def validate_application_key(key: str, field: str = "application_key") -> str:
    """A lowercase GUID such as 196087a1-e815-4bc4-8984-60d8d8a43f1d."""
    if not _APP_KEY.fullmatch(key):
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_APPLICATION_KEY,
            f"application key {key[:64]!r} is not a lowercase GUID "
            "(like 196087a1-e815-4bc4-8984-60d8d8a43f1d)",
            field,
        )
    return key


def validate_phone_number(number: str, field: str = "phone_number") -> str:
    """E.164: a '+' then 8 to 15 digits, e.g. +14155550101."""
    if not _E164.fullmatch(number):
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_PHONE_NUMBER,
            f"phone number {number[:32]!r} is not E.164: '+' then 8 to 15 digits, "
            "e.g. +14155550101",
            field,
        )
    return number


def validate_conference_id(conference_id: str, field: str = "conference_id") -> str:
    if not conference_id:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_CONFERENCE_ID, "conference ID is empty", field
        )
    if len(conference_id) > MAX_CONFERENCE_ID_LENGTH:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_CONFERENCE_ID,
            f"conference ID is {len(conference_id)} characters long; the limit is "
            f"{MAX_CONFERENCE_ID_LENGTH}",
            field,
        )
    return conference_id


def validate_push_data(data: bytes, field: str = "push_data") -> bytes:
    if len(data) > MAX_PUSH_DATA_BYTES:
        raise ParleyError(
            ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
            f"push data is {len(data)} bytes; the limit is {MAX_PUSH_DATA_BYTES}",
            field,
        )
    return data


def validate_sip_identity(identity: str, field: str = "sip_identity") -> str:
    """A SIP identity in the form user@server."""
    if not _SIP_IDENTITY.fullmatch(identity):
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"SIP identity {identity[:64]!r} is not of the form user@server",
            field,
        )
    return identity


def validate_sip_headers(headers: dict[str, str], field: str = "headers") -> dict[str, str]:
    """Custom SIP headers must be prefixed 'x-' (case-insensitive), be SIP tokens, and have
    values on one line."""
    for name, value in headers.items():
        if not name.lower().startswith("x-") or len(name) <= 2:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_HEADER,
                f"SIP header {name!r} must be prefixed 'x-'",
                field,
            )
        if not _SIP_TOKEN.fullmatch(name):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_HEADER,
                f"SIP header name {name!r} holds a character a SIP header name cannot",
                field,
            )
        if any(c in value for c in "\r\n\0"):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_HEADER,
                f"the value of SIP header {name!r} holds a line break or NUL",
                field,
            )
    return headers


MAX_HEADERS_BYTES = 1024
MAX_SDP_BYTES = 32 * 1024
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DTMF = re.compile(r"[0-9*#A-Da-d]{1,32}")


def validate_call_id(call_id: str, field: str = "call_id") -> str:
    """A call id is a lowercase UUID the caller chose."""
    if not _UUID.fullmatch(call_id):
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"call id {call_id[:64]!r} is not a lowercase UUID",
            field,
        )
    return call_id


def validate_headers(headers: dict[str, str], field: str = "headers") -> dict[str, str]:
    """Headers of a call or a message: a string map of at most 1024 bytes of UTF-8, keys and
    values together."""
    size = 0
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_HEADER, "headers map strings to strings", field
            )
        if not name:
            raise ParleyError(ErrorCode.ERROR_CODE_INVALID_HEADER, "a header name is empty", field)
        size += len(name.encode()) + len(value.encode())
    if size > MAX_HEADERS_BYTES:
        raise ParleyError(
            ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
            f"headers are {size} bytes of UTF-8; the limit is {MAX_HEADERS_BYTES}",
            field,
        )
    return headers


def validate_sdp(sdp: str, field: str = "sdp") -> str:
    """A session description: starts with v=0, at most MAX_SDP_BYTES (it is relayed, not read)."""
    if not sdp.startswith("v=0"):
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "a session description starts with v=0", field
        )
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise ParleyError(
            ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
            f"the session description is over {MAX_SDP_BYTES} bytes",
            field,
        )
    return sdp


def validate_dtmf(digits: str, field: str = "dtmf") -> str:
    """DTMF digits: 1 to 32 of 0-9, *, #, A-D."""
    if not _DTMF.fullmatch(digits):
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"{digits[:40]!r} is not 1 to 32 DTMF digits (0-9, *, #, A-D)",
            field,
        )
    return digits


DEFAULT_MAX_RECIPIENTS = 10
DEFAULT_MAX_TEXT_BYTES = 64 * 1024


def validate_message_id(message_id: str, field: str = "message_id") -> str:
    """A message id is a lowercase UUID the sender's client chose."""
    if not _UUID.fullmatch(message_id):
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"message id {message_id[:64]!r} is not a lowercase UUID",
            field,
        )
    return message_id


def validate_recipients(
    recipient_ids: list[str], limit: int = DEFAULT_MAX_RECIPIENTS, field: str = "recipient_ids"
) -> list[str]:
    """One to `limit` distinct, valid user IDs."""
    if not recipient_ids:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "a message has no recipient", field
        )
    if len(recipient_ids) > limit:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"a message has {len(recipient_ids)} recipients; the limit is {limit}",
            field,
        )
    for index, user_id in enumerate(recipient_ids):
        validate_user_id(user_id, f"{field}[{index}]")
    if len(set(recipient_ids)) != len(recipient_ids):
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "a recipient is named twice", field
        )
    return recipient_ids


def validate_message_text(
    text: str, limit: int = DEFAULT_MAX_TEXT_BYTES, field: str = "text"
) -> str:
    """A message text of at most `limit` bytes of UTF-8."""
    size = len(text.encode())
    if size > limit:
        raise ParleyError(
            ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
            f"the text is {size} bytes of UTF-8; the limit is {limit}",
            field,
        )
    return text
