"""A local APNs: the HTTP/2 provider API (`POST /3/device/<token>`) with token-based
authentication, checking what the real one checks.

    async with FakeApns(tls) as apns:
        key = apns.new_key()                          # a .p8 key the team trusts, its IDs
        credentials = ApnsCredentials.from_p8(key.private_key_pem, team_id=key.team_id,
                                              key_id=key.key_id, topic=apns.topic,
                                              endpoint=apns.url)

It answers HTTP/1.1 requests with an error, as APNs speaks HTTP/2 only.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.providers.server import FakeProvider, PushRecord, Request, Response
from tests.support.providers.tls import LocalTls

PROVIDER_TOKEN_LIFETIME = 3600
_DEVICE_PATH = re.compile(r"/3/device/([^/]*)")
_DEVICE_TOKEN = re.compile(r"[0-9a-fA-F]{64}")
_VERIFIED_MAX = 1000  # provider tokens remembered as verified (a provider makes one an hour)
_PUSH_TYPES = {"alert", "background", "voip", "complication", "fileprovider", "mdm", "location"}


def _apple_id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10))


def p8_key(key: ec.EllipticCurvePrivateKey | None = None) -> str:
    """An APNs auth key file's text (PKCS#8 PEM of an EC P-256 key); fresh unless given."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


@dataclass(frozen=True)
class ApnsKey:
    """An APNs auth key as the developer account gives it: the .p8 file and its IDs."""

    team_id: str
    key_id: str
    private_key_pem: str = field(repr=False)

    def with_other_key(self) -> ApnsKey:
        """The same IDs with another private key (one the team does not have)."""
        return replace(self, private_key_pem=p8_key())


def device_token() -> str:
    """A device token as an app gets it: 32 random bytes in hex."""
    return secrets.token_hex(32)


def _reason(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    answer = {"reason": reason}
    if status == 410:
        answer["timestamp"] = str(int(time.time() * 1000))
    return Response.of_json(status, answer, {"apns-id": str(uuid.uuid4()), **(headers or {})})


class FakeApns(FakeProvider):
    def __init__(
        self,
        tls: LocalTls,
        *,
        topic: str = "org.parley.app",
        requests_per_connection: int = 1_000_000,
    ) -> None:
        super().__init__(tls, requests_per_connection=requests_per_connection)
        self.topic = topic
        self.team_id = _apple_id()
        self.keys: dict[str, ec.EllipticCurvePublicKey] = {}  # key ID: public key
        self.provider_tokens: set[str] = set()  # distinct provider tokens accepted
        self.expired_tokens: set[str] = set()
        self.http1_requests = 0
        # Provider tokens whose signature checked out: token: (key ID, key, claims).
        self._verified: dict[str, tuple[str, ec.EllipticCurvePublicKey, dict[str, Any]]] = {}

    def new_key(self) -> ApnsKey:
        """A fresh auth key of this fake's team, which it trusts."""
        private = ec.generate_private_key(ec.SECP256R1())
        key = ApnsKey(self.team_id, _apple_id(), p8_key(private))
        self.keys[key.key_id] = private.public_key()
        return key

    def expire_provider_tokens(self) -> None:
        """Every provider token seen so far gets 403 ExpiredProviderToken from now on."""
        self.expired_tokens |= self.provider_tokens

    async def handle(self, request: Request) -> Response:
        if request.http_version != "2":
            self.http1_requests += 1
            return _reason(400, "BadHTTPVersion (APNs speaks HTTP/2 only)")
        if request.method != "POST":
            return _reason(405, "MethodNotAllowed")
        match = _DEVICE_PATH.fullmatch(request.path)
        if match is None:
            return _reason(404, "BadPath")
        outage = self.outage_answer()
        if outage is not None:
            status, headers = outage
            return _reason(status, "ServiceUnavailable", headers)
        refusal = self._check_provider_token(request)
        if refusal is not None:
            return refusal
        refusal = self._check_headers(request)
        if refusal is not None:
            return refusal
        token = match.group(1)
        if not _DEVICE_TOKEN.fullmatch(token):
            return _reason(400, "BadDeviceToken")
        if not request.body:
            return _reason(400, "PayloadEmpty")
        push_type = request.headers["apns-push-type"]
        if len(request.body) > (5120 if push_type == "voip" else 4096):
            return _reason(413, "PayloadTooLarge")
        try:
            body = json.loads(request.body)
        except ValueError:
            return _reason(400, "BadPayload (not JSON)")
        if not isinstance(body, dict) or not isinstance(body.get("aps"), dict):
            return _reason(400, "BadPayload (no aps dictionary)")
        if token in self.dead_tokens:
            return _reason(410, "Unregistered")
        self.record(
            PushRecord(
                token=token,
                kind=str(body.get("kind", "")),
                payload=str(body.get("parley", "")),
                headers=dict(request.headers),
                body=body,
                arrived=time.time(),
                http_version=request.http_version,
            )
        )
        apns_id = request.headers.get("apns-id") or str(uuid.uuid4()).upper()
        return Response(200, b"", {"apns-id": apns_id})

    def _check_provider_token(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            self.auth_failures += 1
            return _reason(403, "MissingProviderToken")
        claims = self._verified_claims(token)
        if claims is None:
            self.auth_failures += 1
            return _reason(403, "InvalidProviderToken")
        if claims["iss"] != self.team_id:
            self.auth_failures += 1
            return _reason(403, "InvalidProviderToken")
        if token in self.expired_tokens or claims["iat"] < time.time() - PROVIDER_TOKEN_LIFETIME:
            self.auth_failures += 1
            return _reason(403, "ExpiredProviderToken")
        self.provider_tokens.add(token)
        return None

    def _verified_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a provider token signed (ES256) by a key of the team, or None.

        A token verified once is remembered with the key that verified it (a provider sends
        the same token for up to an hour, and checking its signature would be most of the
        cost of a push here): used again, it needs that key still trusted and its `exp`, if
        it has one, still ahead, which is what verifying it again would check (its iat and
        nbf were past already). Refusals are not remembered."""
        known = self._verified.get(token)
        if known is not None:
            key_id, public_key, claims = known
            if self.keys.get(key_id) is public_key and (
                "exp" not in claims or claims["exp"] > time.time()
            ):
                return claims
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        key_id = str(header.get("kid", ""))
        trusted = self.keys.get(key_id)
        if header.get("alg") != "ES256" or trusted is None:
            return None
        try:
            claims = jwt.decode(
                token,
                trusted,
                algorithms=["ES256"],
                options={"require": ["iss", "iat"], "verify_iat": True},
            )
        except jwt.PyJWTError:
            return None
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = (key_id, trusted, claims)
        return claims

    def _check_headers(self, request: Request) -> Response | None:
        headers = request.headers
        push_type = headers.get("apns-push-type")
        if push_type not in _PUSH_TYPES:
            return _reason(400, "InvalidPushType")
        topic = headers.get("apns-topic")
        if not topic:
            return _reason(400, "MissingTopic")
        expected = f"{self.topic}.voip" if push_type == "voip" else self.topic
        if topic != expected:
            return _reason(400, "TopicDisallowed")
        if headers.get("apns-priority", "10") not in ("5", "10", "1"):
            return _reason(400, "BadPriority")
        if not headers.get("apns-expiration", "0").isdigit():
            return _reason(400, "BadExpirationDate")
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            return _reason(400, "BadCollapseId")
        return None
