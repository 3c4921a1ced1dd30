"""Verifying an app backend's signed REST request (scheme: `parley_protocol.signatures`).

The gateway checks what it can alone, cheapest first, so a malformed or replayed request
never costs auth a lookup: the Authorization header's shape, the x-timestamp against its
own clock (`PARLEY_REST_MAX_SKEW_SECONDS`), and the body against the hash header it came
with. It then builds the string to sign from the request exactly as received (the raw
path, percent-encoding and query included) and asks auth, which holds the secrets, whether
the signature fits. The application key auth confirms is the only application the request
may act on: no route takes an application from its body or path.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from aiohttp import web

from parley.v1 import auth_pb2
from parley_gateway.request_body import read_body
from parley_gateway.service_requests import ask
from parley_protocol import signatures, subjects
from parley_protocol.clock import Clock
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.validation import validate_application_key
from parley_service.bus import Bus

AUTH_TIMEOUT_SECONDS = 5.0
SIGNATURE_BYTES = 32  # HMAC-SHA256
EXPECTED_AUTHORIZATION = "Authorization: Application <application key>:<signature>"


@dataclass(frozen=True)
class SignedRequest:
    """A request whose signature auth verified: the application it acts for, and its body."""

    application_key: str
    body: bytes


def _unauthenticated(reason: str, field: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, reason, field)


def parse_authorization(header: str | None) -> tuple[str, str]:
    """(application key, signature) of an `Application <key>:<signature>` header, or
    UNAUTHENTICATED saying what is wrong with it."""
    if header is None or not header.strip():
        raise _unauthenticated(
            f"the Authorization header is missing: sign the request ({EXPECTED_AUTHORIZATION})",
            "Authorization",
        )
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != signatures.REST_AUTH_SCHEME.lower():
        raise _unauthenticated(
            f"the Authorization scheme must be {signatures.REST_AUTH_SCHEME}, not "
            f"{scheme[:20]!r} ({EXPECTED_AUTHORIZATION})",
            "Authorization",
        )
    key, colon, signature = credentials.strip().partition(":")
    if not colon or not key or not signature:
        raise _unauthenticated(
            f"the Authorization header must be {EXPECTED_AUTHORIZATION}", "Authorization"
        )
    try:
        validate_application_key(key)
    except ParleyError as err:
        raise _unauthenticated(
            f"the Authorization header's application key is not valid: {err.reason}",
            "Authorization",
        ) from err
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != SIGNATURE_BYTES:
        raise _unauthenticated(
            "the Authorization header's signature is not Base64 of an HMAC-SHA256 digest "
            "(32 bytes)",
            "Authorization",
        )
    return key, signature


def check_timestamp(header: str | None, now: float, max_skew_seconds: float) -> str:
    """The x-timestamp as sent, once it is known to be within the skew of `now`."""
    name = signatures.REST_TIMESTAMP_HEADER
    if header is None or not header.strip():
        raise _unauthenticated(
            f"the {name} header is missing: send the time of signing, e.g. "
            "2026-11-30T18:00:00Z, and sign it",
            name,
        )
    when = signatures.parse_rest_timestamp(header)
    if when is None:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"the {name} header {header[:40]!r} is not an ISO 8601 date and time with a "
            "zone, e.g. 2026-11-30T18:00:00Z",
            name,
        )
    skew = now - when
    if abs(skew) > max_skew_seconds:
        direction = "behind" if skew > 0 else "ahead of"
        raise ParleyError(
            ErrorCode.ERROR_CODE_STALE_TIMESTAMP,
            f"the {name} header is {abs(skew):.0f} s {direction} the gateway's clock; it "
            f"must be within {max_skew_seconds:g} s",
            name,
        )
    return header


def body_hash(body: bytes, md5: str | None, sha256: str | None) -> str:
    """The content hash to sign: the hash header's value once the body is checked against
    it; "" for an empty body."""
    if md5 is not None and sha256 is not None:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"send one of {signatures.REST_MD5_HEADER} and {signatures.REST_SHA256_HEADER}, "
            "not both",
            signatures.REST_SHA256_HEADER,
        )
    if not body:
        return ""
    if md5 is None and sha256 is None:
        raise _unauthenticated(
            f"the request has a body but neither a {signatures.REST_SHA256_HEADER} nor a "
            f"{signatures.REST_MD5_HEADER} header: the body's hash is part of what is signed",
            signatures.REST_SHA256_HEADER,
        )
    name = signatures.REST_MD5_HEADER if md5 is not None else signatures.REST_SHA256_HEADER
    claimed = (md5 if md5 is not None else sha256) or ""
    actual = signatures.rest_content_hash(body, signatures.REST_HASH_HEADERS[name])
    if not signatures.signatures_equal(claimed.strip(), actual):
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_SIGNATURE,
            f"the request body does not match its {name} hash",
            name,
        )
    return actual


class RequestVerifier:
    def __init__(self, bus: Bus, clock: Clock, max_skew_seconds: float) -> None:
        self._bus = bus
        self._clock = clock
        self._max_skew = max_skew_seconds

    async def verify(self, request: web.Request) -> SignedRequest:
        """The verified application and the body, or the ParleyError that refuses it."""
        key, signature = parse_authorization(request.headers.get("Authorization"))
        timestamp = check_timestamp(
            request.headers.get(signatures.REST_TIMESTAMP_HEADER),
            self._clock.time(),
            self._max_skew,
        )
        body = await read_body(request)
        hashed = body_hash(
            body,
            request.headers.get(signatures.REST_MD5_HEADER),
            request.headers.get(signatures.REST_SHA256_HEADER),
        )
        to_sign = signatures.rest_string_to_sign(
            request.method,
            hashed,
            request.headers.get("Content-Type", ""),
            timestamp,
            request.raw_path,
        )
        verified = await ask(
            self._bus,
            "auth",
            subjects.AUTH_VERIFY_REQUEST,
            auth_pb2.VerifyRequestSignature(
                application_key=key, string_to_sign=to_sign, signature=signature
            ),
            auth_pb2.RequestSignatureVerified,
            AUTH_TIMEOUT_SECONDS,
        )
        return SignedRequest(verified.application_key, body)
