"""Web Push: the browser's push service, with the payload encrypted for the subscription
(RFC 8291, content coding aes128gcm of RFC 8188) and the sender identified by VAPID
(RFC 8292).

The device token is the browser's subscription (PushSubscription.toJSON(): the endpoint
and its p256dh and auth keys). Each push gets a fresh ECDH key and salt; the VAPID JWT is
made once per push service origin and reused for most of its 12 hours.
"""

from __future__ import annotations

import functools
import json
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from parley_push.providers.base import (
    Notification,
    Outcome,
    b64url_decode,
    b64url_encode,
    dead,
    failed,
    retry_or_failed,
    sent,
    short_id,
    unreachable,
)
from parley_push.providers.http import Answer, Unreachable, post
from parley_push.providers.http1_client import Http1Client

RECORD_SIZE = 4096
# One record: header (86 bytes) + plaintext + delimiter + tag within the 4096 bytes every
# push service accepts (RFC 8291 §4).
MAX_PLAINTEXT = RECORD_SIZE - 86 - 1 - 16
VAPID_LIFETIME_SECONDS = 12 * 3600
VAPID_RENEW_BEFORE_SECONDS = 3600
MAX_TOPIC = 32


@functools.lru_cache(maxsize=10_000)
def _p256_public(raw: bytes) -> ec.EllipticCurvePublicKey:
    """A subscription's key (checked on the curve: the costly part, so kept for the next
    push to the same browser)."""
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("not an uncompressed P-256 point (65 bytes)")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


def _public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _vapid_key(private_key: str) -> ec.EllipticCurvePrivateKey:
    text = private_key.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the VAPID key is not an unencrypted PEM private key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise ValueError("the VAPID key is not an EC P-256 key")
        return key
    try:
        raw = b64url_decode(text)
    except ValueError as exc:
        raise ValueError("the VAPID key is neither PEM nor base64url") from exc
    if len(raw) != 32:
        raise ValueError(f"a raw VAPID key has 32 bytes, not {len(raw)}")
    try:
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError as exc:
        raise ValueError(f"the VAPID key is not a P-256 private scalar: {exc}") from exc


@dataclass(frozen=True)
class WebPushCredentials:
    private_key_pem: str = field(repr=False)  # PKCS#8 PEM, whatever form it was given in
    subject: str  # a contact for the push services: "mailto:..." or "https://..."

    @classmethod
    def from_vapid(cls, private_key: str, subject: str) -> WebPushCredentials:
        """A VAPID key (PEM, or the base64url 32-byte scalar) and subject; ValueError saying
        what is wrong."""
        key = _vapid_key(private_key)
        subject = subject.strip()
        if subject.startswith("mailto:"):
            if "@" not in subject:
                raise ValueError(f"the VAPID subject is not a mailto: address: {subject!r}")
        elif subject.startswith("https://"):
            if not urlsplit(subject).hostname:
                raise ValueError(f"the VAPID subject is not an https URL: {subject!r}")
        else:
            raise ValueError(f"the VAPID subject must be mailto: or https://, not {subject!r}")
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        return cls(pem, subject)

    @property
    def public_key(self) -> str:
        """The applicationServerKey browsers subscribe with (base64url, uncompressed)."""
        return b64url_encode(_public_bytes(_vapid_key(self.private_key_pem).public_key()))


@dataclass(frozen=True)
class Subscription:
    endpoint: str
    p256dh: bytes  # the browser's ECDH public key, uncompressed P-256 point
    auth: bytes  # the 16-byte authentication secret

    @property
    def origin(self) -> str:
        parts = urlsplit(self.endpoint)
        return f"{parts.scheme}://{parts.netloc}"


def parse_subscription(token: str) -> Subscription:
    """A browser's subscription JSON; ValueError saying what is wrong."""
    try:
        value = json.loads(token)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the subscription is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError("the subscription is not a JSON object")
    endpoint = value.get("endpoint")
    if not isinstance(endpoint, str):
        raise ValueError("the subscription has no endpoint")
    parts = urlsplit(endpoint)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"the subscription endpoint is not an https URL: {endpoint!r}")
    keys = value.get("keys")
    if not isinstance(keys, dict):
        raise ValueError("the subscription has no keys")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    if not isinstance(p256dh, str) or not isinstance(auth, str):
        raise ValueError("the subscription keys need p256dh and auth")
    try:
        public = b64url_decode(p256dh)
        _p256_public(public)
    except ValueError as exc:
        raise ValueError(f"keys.p256dh is not a P-256 public key: {exc}") from exc
    try:
        secret = b64url_decode(auth)
    except ValueError as exc:
        raise ValueError("keys.auth is not base64url") from exc
    if len(secret) != 16:
        raise ValueError(f"keys.auth has {len(secret)} bytes, not 16")
    return Subscription(endpoint, public, secret)


def encrypt(
    plaintext: bytes,
    ua_public: bytes,
    auth_secret: bytes,
    *,
    sender_key: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
) -> bytes:
    """The aes128gcm body of a push (RFC 8291 §3.4 keys, RFC 8188 coding, one record).

    `sender_key` and `salt` are fresh for every push; tests pass them to check known
    answers. ValueError when the plaintext does not fit one record.
    """
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError(f"the payload has {len(plaintext)} bytes, more than {MAX_PLAINTEXT}")
    as_key = sender_key or ec.generate_private_key(ec.SECP256R1())
    salt = salt if salt is not None else os.urandom(16)
    as_public = _public_bytes(as_key.public_key())
    ecdh_secret = as_key.exchange(ec.ECDH(), _p256_public(ua_public))
    # IKM = HKDF(salt=auth_secret, ikm=ecdh_secret, info="WebPush: info" 0 ua_public as_public)
    ikm = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=auth_secret,
        info=b"WebPush: info\x00" + ua_public + as_public,
    ).derive(ecdh_secret)
    cek = HKDF(
        algorithm=hashes.SHA256(), length=16, salt=salt, info=b"Content-Encoding: aes128gcm\x00"
    ).derive(ikm)
    nonce = HKDF(
        algorithm=hashes.SHA256(), length=12, salt=salt, info=b"Content-Encoding: nonce\x00"
    ).derive(ikm)
    # The only record is the last: its padding delimiter is 2, and no padding follows.
    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    header = salt + struct.pack("!IB", RECORD_SIZE, len(as_public)) + as_public
    return header + ciphertext


def vapid_token(
    key: ec.EllipticCurvePrivateKey, audience: str, subject: str, expires_at: int
) -> str:
    return jwt.encode(
        {"aud": audience, "exp": expires_at, "sub": subject},
        key,
        algorithm="ES256",
        headers={"typ": "JWT"},
    )


def urgency(notification: Notification) -> str:
    return "high" if notification.is_call else "normal"


def classify(response: Answer) -> Outcome:
    """What one push service answer means (401 and 403 are handled by the sender first)."""
    status = response.status_code
    reason = response.text[:200].strip() or f"HTTP {status}"
    if 200 <= status < 300:
        return sent(status, response.headers.get("location", ""))
    if status in (404, 410):
        return dead(status, reason)
    return retry_or_failed(status, reason, response.headers.get("retry-after"))


class WebPushSender:
    """Sends to any push service with one VAPID key; one client for all their origins."""

    provider = "web_push"

    def __init__(
        self,
        credentials: WebPushCredentials,
        *,
        ca_file: str | Path | None = None,
        clock: Callable[[], float] = time.time,
        max_connections: int = 100,
    ) -> None:
        self.credentials = credentials
        self._key = _vapid_key(credentials.private_key_pem)
        self._public = b64url_encode(_public_bytes(self._key.public_key()))
        self._clock = clock
        self._client = Http1Client(ca_file, max_connections)
        self._vapid: dict[str, tuple[str, float]] = {}  # origin: (authorization, renew at)

    def _authorization(self, origin: str, renew: bool = False) -> str:
        now = self._clock()
        cached = self._vapid.get(origin)
        if cached is not None and not renew and now < cached[1]:
            return cached[0]
        expires_at = int(now) + VAPID_LIFETIME_SECONDS
        token = vapid_token(self._key, origin, self.credentials.subject, expires_at)
        value = f"vapid t={token}, k={self._public}"
        self._vapid[origin] = (value, expires_at - VAPID_RENEW_BEFORE_SECONDS)
        return value

    async def send(self, token: str, notification: Notification) -> Outcome:
        try:
            subscription = parse_subscription(token)
        except ValueError as exc:
            return dead(0, f"malformed subscription: {exc}")
        plaintext = json.dumps(
            {"parley": notification.payload, "kind": notification.kind}, separators=(",", ":")
        ).encode()
        try:
            body = encrypt(plaintext, subscription.p256dh, subscription.auth)
        except ValueError as exc:
            return failed(0, str(exc))
        headers = {
            "ttl": str(max(0, notification.ttl_seconds)),
            "urgency": urgency(notification),
            "content-type": "application/octet-stream",
            "content-encoding": "aes128gcm",
        }
        if notification.collapse_id:
            headers["topic"] = short_id(notification.collapse_id, MAX_TOPIC)
        for attempt in range(2):
            headers["authorization"] = self._authorization(subscription.origin, renew=attempt > 0)
            try:
                response = await post(
                    self._client, subscription.endpoint, content=body, headers=headers
                )
            except Unreachable as exc:
                return unreachable(exc)
            if response.status_code not in (401, 403):
                return classify(response)
        return failed(response.status_code, response.text[:200].strip() or "VAPID refused")

    async def close(self) -> None:
        await self._client.aclose()
