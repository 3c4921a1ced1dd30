"""Apple Push Notification service: the HTTP/2 provider API with token-based authentication.

The provider token is an ES256 JWT signed with the team's .p8 key; Apple refuses one older
than an hour and too frequent renewals, so the sender reuses one for 40 minutes, and renews
it at once when APNs answers 403 ExpiredProviderToken. Calls go to the VoIP topic
("<bundle id>.voip", push type voip, which PushKit wakes the app for); messages are alerts
the app may rewrite (mutable-content) from the signed payload.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from parley_push.providers.base import (
    Notification,
    Outcome,
    dead,
    failed,
    retry_or_failed,
    sent,
    short_id,
    unreachable,
)
from parley_push.providers.h2_client import H2Client
from parley_push.providers.http import Answer, Unreachable, post

APNS_PRODUCTION = "https://api.push.apple.com"
APNS_SANDBOX = "https://api.sandbox.push.apple.com"
TOKEN_RENEWAL_SECONDS = 40 * 60
MAX_COLLAPSE_ID_BYTES = 64
DEAD_REASONS = frozenset({"Unregistered", "BadDeviceToken", "DeviceTokenNotForTopic"})

_APPLE_ID = re.compile(r"[A-Z0-9]{10}")
_BUNDLE_ID = re.compile(r"[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+")
_HEX = re.compile(r"[0-9a-fA-F]+")


@dataclass(frozen=True)
class ApnsCredentials:
    team_id: str
    key_id: str
    private_key_pem: str = field(repr=False)
    topic: str  # the app's bundle ID
    endpoint: str = APNS_PRODUCTION

    @classmethod
    def from_p8(
        cls,
        private_key_pem: str,
        *,
        team_id: str,
        key_id: str,
        topic: str,
        endpoint: str = APNS_PRODUCTION,
    ) -> ApnsCredentials:
        """Checks an APNs auth key (.p8) and its IDs; ValueError saying what is wrong."""
        team_id, key_id, topic = team_id.strip(), key_id.strip(), topic.strip()
        if not _APPLE_ID.fullmatch(team_id):
            raise ValueError(f"team_id is not a 10-character Apple team ID: {team_id!r}")
        if not _APPLE_ID.fullmatch(key_id):
            raise ValueError(f"key_id is not a 10-character APNs key ID: {key_id!r}")
        if not _BUNDLE_ID.fullmatch(topic):
            raise ValueError(f"topic is not a bundle ID: {topic!r}")
        if topic.endswith(".voip"):
            raise ValueError("topic is the bundle ID itself (the .voip topic is derived)")
        _ec_key(private_key_pem)
        parts = urlsplit(endpoint)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"the APNs endpoint is not an https URL: {endpoint!r}")
        return cls(team_id, key_id, private_key_pem, topic, endpoint.rstrip("/"))


def _ec_key(pem: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the key is not an unencrypted PEM (.p8) private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the key is not an EC P-256 key (an APNs .p8 auth key)")
    return key


def provider_token(
    credentials: ApnsCredentials, key: ec.EllipticCurvePrivateKey, now: float
) -> str:
    """The JWT APNs authenticates the team by (header alg and kid; claims iss and iat)."""
    return jwt.encode(
        {"iss": credentials.team_id, "iat": int(now)},
        key,
        algorithm="ES256",
        headers={"kid": credentials.key_id},
    )


class ProviderTokens:
    """The current provider token: made once, reused, renewed every 40 minutes or when APNs
    says it expired (once, however many sends saw it refused)."""

    def __init__(
        self, credentials: ApnsCredentials, clock: Callable[[], float] = time.time
    ) -> None:
        self._credentials = credentials
        self._key = _ec_key(credentials.private_key_pem)
        self._clock = clock
        self._token = ""
        self._made_at = 0.0
        self.made = 0  # tokens made so far

    def current(self) -> str:
        now = self._clock()
        if not self._token or now - self._made_at >= TOKEN_RENEWAL_SECONDS:
            self._token = provider_token(self._credentials, self._key, now)
            self._made_at = now
            self.made += 1
        return self._token

    def expired(self, token: str) -> None:
        """APNs refused `token` as expired: the next `current()` makes a new one (unless
        another send already renewed it)."""
        if token == self._token:
            self._token = ""


# The request headers whose value changes from one push to the next.
ALWAYS_NEW = frozenset({"apns-expiration", "apns-collapse-id"})


def request_headers(
    credentials: ApnsCredentials, notification: Notification, bearer: str, now: float
) -> dict[str, str]:
    call = notification.is_call
    ttl = max(0, notification.ttl_seconds)
    headers = {
        "authorization": f"bearer {bearer}",
        "apns-topic": f"{credentials.topic}.voip" if call else credentials.topic,
        "apns-push-type": "voip" if call else "alert",
        "apns-priority": "10",
        # 0: deliver now or never; else a unix time until which APNs keeps trying.
        "apns-expiration": str(int(now) + ttl if ttl else 0),
        "content-type": "application/json",
    }
    if notification.collapse_id:
        headers["apns-collapse-id"] = short_id(notification.collapse_id, MAX_COLLAPSE_ID_BYTES)
    return headers


def request_body(notification: Notification) -> dict[str, Any]:
    aps: dict[str, Any] = (
        {} if notification.is_call else {"alert": {"title": "New message"}, "mutable-content": 1}
    )
    return {"aps": aps, "parley": notification.payload, "kind": notification.kind}


def _reason(response: Answer) -> str:
    try:
        reason = response.json().get("reason", "")
    except (ValueError, AttributeError):
        return response.text[:200]
    return str(reason)


def classify(response: Answer) -> Outcome:
    """What one APNs answer means (403 ExpiredProviderToken is handled by the sender)."""
    status = response.status_code
    if status == 200:
        return sent(status, response.headers.get("apns-id", ""))
    reason = _reason(response) or f"HTTP {status}"
    if status == 410 or (status == 400 and reason in DEAD_REASONS):
        return dead(status, reason)
    return retry_or_failed(status, reason, response.headers.get("retry-after"))


class ApnsSender:
    """Sends through APNs with one team key and bundle ID, over one HTTP/2 connection pool."""

    provider = "apns"

    def __init__(
        self,
        credentials: ApnsCredentials,
        *,
        ca_file: str | Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = credentials
        self.tokens = ProviderTokens(credentials, clock)
        self._clock = clock
        self._client = H2Client(ca_file, ALWAYS_NEW)  # one multiplexed connection
        self._base = f"{credentials.endpoint}/3/device/"

    async def send(self, token: str, notification: Notification) -> Outcome:
        if not _HEX.fullmatch(token):
            return dead(0, "BadDeviceToken (not hexadecimal)")
        url = self._base + token.lower()
        body = json.dumps(request_body(notification), separators=(",", ":"))
        for _attempt in range(2):
            bearer = self.tokens.current()
            headers = request_headers(self.credentials, notification, bearer, self._clock())
            try:
                response = await post(self._client, url, content=body, headers=headers)
            except Unreachable as exc:
                return unreachable(exc)
            if response.status_code == 403 and _reason(response) == "ExpiredProviderToken":
                self.tokens.expired(bearer)  # renew at once and send again, once
                continue
            return classify(response)
        return failed(403, "ExpiredProviderToken")

    async def close(self) -> None:
        await self._client.aclose()
