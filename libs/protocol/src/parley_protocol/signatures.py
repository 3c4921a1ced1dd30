"""Signatures of the registration schemes and of app backends' REST requests.

APPLICATION_SERVER (the guide's scheme):
    Base64(SHA1(userId + applicationKey + sequence + applicationSecret))
APPLICATION_SECRET (the client holds the secret and signs its own request):
    Base64(HMAC-SHA256(applicationSecret, "parley-register\n" + key + "\n" + userId + "\n" + ts))
REST (an app backend's request to the gateway's REST API): see the section at the end.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from datetime import UTC, datetime, timedelta, timezone


def registration_signature(
    user_id: str, application_key: str, sequence: int, application_secret: str
) -> str:
    """The guide's signature, as the app's server computes it."""
    to_sign = f"{user_id}{application_key}{sequence}{application_secret}"
    digest = hashlib.sha1(to_sign.encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def self_signed_registration(
    user_id: str, application_key: str, timestamp_ms: int, application_secret: str
) -> str:
    """The signature a client holding the application secret puts on its own registration."""
    message = f"parley-register\n{application_key}\n{user_id}\n{timestamp_ms}".encode()
    digest = hmac.new(application_secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signatures_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# -- App-backend REST requests (the gateway's /v1/conferences and /v1/callouts) --------------
#
# An app backend signs each request the way the hosted platforms' voice REST APIs do, so
# code written for them moves over with a new base URL:
#
#   Authorization: Application <application key>:<signature>
#   x-timestamp:   2026-11-30T18:00:00Z            (ISO 8601, UTC; fractions allowed)
#   signature      = Base64(HMAC-SHA256(Base64Decode(application secret), string_to_sign))
#   string_to_sign = METHOD \n content_hash \n content_type \n "x-timestamp:" ts \n path
#
# content_hash is Base64(MD5(body)) when the request carries Content-MD5, Base64(SHA-256
# (body)) when it carries x-content-sha256, and empty for an empty body; the path is the
# one sent, percent-encoding and query string included. The hash binds the body to the
# signature; the timestamp bounds how long a captured request can be replayed.

REST_AUTH_SCHEME = "Application"
REST_TIMESTAMP_HEADER = "x-timestamp"
REST_SHA256_HEADER = "x-content-sha256"
REST_MD5_HEADER = "Content-MD5"
# Which hash header names which digest.
REST_HASH_HEADERS: dict[str, str] = {REST_SHA256_HEADER: "sha256", REST_MD5_HEADER: "md5"}

_REST_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def rest_content_hash(body: bytes, algorithm: str) -> str:
    """Base64 of the body's MD5 or SHA-256 digest (`algorithm` "md5" or "sha256"); "" for
    an empty body, which the string to sign carries as an empty line."""
    if not body:
        return ""
    if algorithm == "md5":
        digest = hashlib.md5(body, usedforsecurity=False).digest()
    elif algorithm == "sha256":
        digest = hashlib.sha256(body).digest()
    else:
        raise ValueError(f"algorithm must be 'md5' or 'sha256', not {algorithm!r}")
    return base64.b64encode(digest).decode("ascii")


def rest_string_to_sign(
    method: str, content_hash: str, content_type: str, timestamp: str, path: str
) -> str:
    """What an app backend signs: one line each for the method, the body's hash, the
    Content-Type, the timestamp header and the path (with its query string) as sent."""
    return f"{method.upper()}\n{content_hash}\n{content_type}\nx-timestamp:{timestamp}\n{path}"


def rest_signature(secret_b64: str, string_to_sign: str) -> str:
    """Base64(HMAC-SHA256(Base64Decode(secret), string_to_sign)).

    The key is the secret's 16 decoded bytes, not its text (unlike the registration
    schemes), as the hosted platforms' REST APIs do. ValueError when the secret is not
    base64.
    """
    try:
        key = base64.b64decode(secret_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the application secret is not base64") from exc
    digest = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def rest_authorization(application_key: str, signature: str) -> str:
    return f"{REST_AUTH_SCHEME} {application_key}:{signature}"


def format_rest_timestamp(when: float | datetime) -> str:
    """`when` (a datetime, or seconds since the epoch) as ISO 8601 UTC with a Z, to the
    millisecond when it has a fraction."""
    if not isinstance(when, datetime):
        when = datetime.fromtimestamp(when, tz=UTC)
    elif when.tzinfo is None:
        raise ValueError("a naive datetime names no instant; give one with a time zone")
    when = when.astimezone(UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += f".{when.microsecond // 1000:03d}"
    return text + "Z"


def parse_rest_timestamp(value: str) -> float | None:
    """Seconds since the epoch of an x-timestamp (ISO 8601 date and time with Z or an
    offset, optionally fractional seconds), or None when it is not one."""
    match = _REST_TIMESTAMP.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    fraction = match.group(7) or ""
    zone = UTC
    if match.group(9):
        hours, minutes = int(match.group(10)), int(match.group(11))
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        zone = timezone(offset if match.group(9) == "+" else -offset)
    try:
        when = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:  # month 13, February 30, second 60, ...
        return None
    return when.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def sign_rest_request(
    application_key: str,
    application_secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str = "",
    timestamp: str | float | datetime | None = None,
    hash_header: str = REST_SHA256_HEADER,
) -> dict[str, str]:
    """The headers that sign one request: Authorization, x-timestamp, and with a body its
    Content-Type and hash header (`hash_header`: x-content-sha256 or Content-MD5).

    `path` must be exactly what goes on the request line (percent-encoded, with the query
    string); `timestamp` is now when not given.
    """
    if hash_header not in REST_HASH_HEADERS:
        raise ValueError(f"hash_header must be one of {sorted(REST_HASH_HEADERS)}")
    if timestamp is None:
        timestamp = time.time()
    stamp = timestamp if isinstance(timestamp, str) else format_rest_timestamp(timestamp)
    content_hash = rest_content_hash(body, REST_HASH_HEADERS[hash_header])
    to_sign = rest_string_to_sign(method, content_hash, content_type, stamp, path)
    headers = {
        "Authorization": rest_authorization(
            application_key, rest_signature(application_secret, to_sign)
        ),
        REST_TIMESTAMP_HEADER: stamp,
    }
    if content_type:
        headers["Content-Type"] = content_type
    if body:
        headers[hash_header] = content_hash
    return headers
