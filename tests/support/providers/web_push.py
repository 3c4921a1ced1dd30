"""A local Web Push service (RFC 8030) with the browser's side of a subscription: it checks
VAPID (RFC 8292) against the key the subscription was made for and decrypts each push
(RFC 8291) with an independent implementation of the content coding (http_ece).

    vapid = vapid_key_pair()
    async with FakeWebPush(tls) as service:
        token = service.subscribe(vapid.public_key)   # the subscription JSON: the token
        credentials = WebPushCredentials.from_vapid(vapid.private_key_pem, "mailto:ops@example.org")
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.providers.server import FakeProvider, PushRecord, Request, Response
from tests.support.providers.tls import LocalTls

_PUSH_PATH = re.compile(r"/push/([A-Za-z0-9_\-]+)")
_VAPID = re.compile(r"vapid\s+(.*)", re.IGNORECASE | re.DOTALL)
_TOPIC = re.compile(r"[A-Za-z0-9_\-]{1,32}")
_URGENCIES = {"very-low", "low", "normal", "high"}
_VERIFIED_MAX = 1000  # VAPID tokens remembered as verified


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _public_point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@dataclass(frozen=True)
class VapidKeyPair:
    private_key_pem: str = field(repr=False)
    private_key_raw: str = field(repr=False)  # base64url of the 32-byte scalar
    public_key: str  # the applicationServerKey: base64url of the uncompressed point


def vapid_key_pair() -> VapidKeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    return VapidKeyPair(pem, b64url(raw), b64url(_public_point(key)))


@dataclass(frozen=True)
class BrowserSubscription:
    """The browser's side: its ECDH key and auth secret, and the server key it accepts."""

    id: str
    token: str  # PushSubscription.toJSON() as the app would register it
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    auth_secret: bytes = field(repr=False)
    application_server_key: str


class FakeWebPush(FakeProvider):
    def __init__(self, tls: LocalTls, *, requests_per_connection: int = 1_000_000) -> None:
        super().__init__(tls, requests_per_connection=requests_per_connection)
        self.subscriptions: dict[str, BrowserSubscription] = {}
        # VAPID tokens whose signature (by key k, for this audience) checked out, and their
        # claims: (t, k, audience): claims. A sender uses one for hours; verifying it is
        # most of the cost of a push here, so once is enough. Only the signature, audience
        # and claims' presence are taken as read: `exp` and the rest are checked each time.
        self._verified: dict[tuple[str, str, str], dict[str, Any]] = {}

    def subscribe(self, application_server_key: str) -> str:
        """A new subscription for pushes signed with `application_server_key` (the VAPID
        public key, base64url); returns its JSON, the device token."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        sub_id = secrets.token_urlsafe(24)
        token = json.dumps(
            {
                "endpoint": f"{self.url}/push/{sub_id}",
                "expirationTime": None,
                "keys": {"p256dh": b64url(_public_point(key)), "auth": b64url(auth)},
            }
        )
        self.subscriptions[sub_id] = BrowserSubscription(
            sub_id, token, key, auth, application_server_key
        )
        return token

    def mark_dead(self, token: str) -> None:
        """The subscription `token` (its JSON, or its ID) is gone: 410 from now on."""
        for sub in self.subscriptions.values():
            if token in (sub.token, sub.id):
                self.dead_tokens.add(sub.id)
                return
        raise KeyError("no such subscription")

    async def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(405, b"method not allowed")
        match = _PUSH_PATH.fullmatch(request.path)
        sub = self.subscriptions.get(match.group(1)) if match else None
        if sub is None:
            return Response(404, b"no such subscription")
        outage = self.outage_answer()
        if outage is not None:
            status, headers = outage
            return Response(status, b"service unavailable", headers)
        refusal = self._check_vapid(request, sub)
        if refusal is not None:
            self.auth_failures += 1
            return refusal
        headers = request.headers
        if headers.get("content-encoding") != "aes128gcm":
            return Response(400, b"Content-Encoding must be aes128gcm")
        if not headers.get("ttl", "").isdigit():
            return Response(400, b"TTL header missing or not a number")
        if headers.get("urgency", "normal") not in _URGENCIES:
            return Response(400, b"bad Urgency")
        if "topic" in headers and not _TOPIC.fullmatch(headers["topic"]):
            return Response(400, b"Topic must be at most 32 base64url characters")
        if len(request.body) > 4096:
            return Response(413, b"payload too large")
        if sub.id in self.dead_tokens:
            return Response(410, b"push subscription has unsubscribed or expired")
        try:
            plaintext = http_ece.decrypt(
                request.body,
                private_key=sub.private_key,
                auth_secret=sub.auth_secret,
                version="aes128gcm",
            )
            message = json.loads(plaintext)
        except (http_ece.ECEException, ValueError) as exc:
            return Response(400, f"cannot decrypt: {exc}".encode())
        if not isinstance(message, dict):
            return Response(400, b"the decrypted message is not a JSON object")
        self.record(
            PushRecord(
                token=sub.token,
                kind=str(message.get("kind", "")),
                payload=str(message.get("parley", "")),
                headers=dict(headers),
                body=message,
                arrived=time.time(),
                http_version=request.http_version,
            )
        )
        return Response(201, b"", {"location": f"{self.url}/message/{secrets.token_urlsafe(12)}"})

    def _check_vapid(self, request: Request, sub: BrowserSubscription) -> Response | None:
        match = _VAPID.fullmatch(request.headers.get("authorization", "").strip())
        if match is None:
            return Response(401, b"missing VAPID authorization")
        params: dict[str, str] = {}
        for part in match.group(1).split(","):
            name, _, value = part.strip().partition("=")
            params[name.strip().lower()] = value.strip()
        token, key = params.get("t", ""), params.get("k", "")
        if not token or not key:
            return Response(401, b"VAPID needs t= and k=")
        if key.rstrip("=") != sub.application_server_key:
            return Response(403, b"the VAPID key is not the one the subscription was made for")
        claims = self._verified.get((token, key, self.url))
        if claims is not None and claims["exp"] <= time.time():
            claims = None  # expired since: verifying it again says so
        if claims is None:
            try:
                public_key = ec.EllipticCurvePublicKey.from_encoded_point(
                    ec.SECP256R1(), unb64url(key.rstrip("="))
                )
                claims = jwt.decode(
                    token,
                    public_key,
                    algorithms=["ES256"],
                    audience=self.url,
                    options={"require": ["aud", "exp"]},
                )
            except (ValueError, jwt.PyJWTError) as exc:
                return Response(403, f"bad VAPID token: {exc}".encode())
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.clear()
            self._verified[(token, key, self.url)] = claims
        if claims["exp"] > time.time() + 24 * 3600:
            return Response(403, b"VAPID token expires more than 24 hours from now")
        subject = str(claims.get("sub", ""))
        if not subject.startswith(("mailto:", "https://")):
            return Response(403, b"VAPID sub must be mailto: or https:")
        return None
