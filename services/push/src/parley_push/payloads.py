"""Push payloads: what a device gets by push and relays back, signed by the push service.

A payload is the ASCII text `p1.<base64url(PushPayloadBody)>.<base64url(HMAC-SHA256)>`, so a
provider can carry it as a string. The HMAC key is derived from the deployment's master key
(HKDF-SHA256), so every replica signs and verifies alike and no key is stored. A payload
names its application and recipient and expires: one forged, altered, expired or addressed
to someone else is refused with an error that says which.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from google.protobuf.message import DecodeError

from parley.v1 import push_pb2
from parley_protocol.errors import ErrorCode, ParleyError

PREFIX = "p1"
# A payload longer than this is not one of ours (a call's headers are at most 1 KiB).
MAX_PAYLOAD_CHARS = 4096
_INFO = b"parley.push.payload.v1"


def payload_key(master_key: bytes) -> bytes:
    """The payload signing key, derived from the master key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(master_key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PayloadSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the payload key must be at least 32 bytes")
        self._key = key

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()

    def sign(self, body: push_pb2.PushPayloadBody) -> str:
        data = body.SerializeToString()
        return f"{PREFIX}.{_b64(data)}.{_b64(self._mac(data))}"

    def open(self, payload: bytes | str, now_ms: int) -> push_pb2.PushPayloadBody:
        """The body of a payload this service signed, not expired; ParleyError otherwise:
        INVALID_ARGUMENT (not a Parley payload), INVALID_SIGNATURE (forged or altered),
        STALE_TIMESTAMP (expired)."""
        text = _text(payload)
        parts = text.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise _malformed(f"it is not a Parley push payload (expected {PREFIX}.<body>.<mac>)")
        try:
            data, mac = _unb64(parts[1]), _unb64(parts[2])
        except (binascii.Error, ValueError) as exc:
            raise _malformed("its parts are not base64url") from exc
        if not hmac.compare_digest(mac, self._mac(data)):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_SIGNATURE,
                "the push payload's signature does not hold: it was not made by this "
                "deployment, or it was altered",
                "payload",
            )
        body = push_pb2.PushPayloadBody()
        try:
            body.ParseFromString(data)
        except DecodeError as exc:  # signed by us, so only after a format change
            raise _malformed("its body does not decode") from exc
        if now_ms >= body.expires_at_ms:
            raise ParleyError(
                ErrorCode.ERROR_CODE_STALE_TIMESTAMP,
                f"the push payload expired {(now_ms - body.expires_at_ms) / 1000:.0f} s ago",
                "payload",
            )
        return body


def _text(payload: bytes | str) -> str:
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("ascii")
        except UnicodeDecodeError as exc:
            raise _malformed("it is not ASCII text") from exc
    if not payload or len(payload) > MAX_PAYLOAD_CHARS:
        raise _malformed(f"it is {len(payload)} characters; a payload is 1 to {MAX_PAYLOAD_CHARS}")
    return payload.strip()


def _malformed(why: str) -> ParleyError:
    return ParleyError(
        ErrorCode.ERROR_CODE_INVALID_ARGUMENT, f"not a valid push payload: {why}", "payload"
    )
