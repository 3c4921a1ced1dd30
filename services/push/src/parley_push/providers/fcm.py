"""Firebase Cloud Messaging, HTTP v1 API, authenticated as a Google service account.

The sender signs an RS256 JWT with the service account's key, trades it at the account's
token URI for an OAuth access token (the JWT bearer grant, RFC 7523), keeps that token
until a minute before it expires (one exchange at a time however many sends wait for it),
and posts each push to `/v1/projects/<project>/messages:send`. A 401 renews the access
token once and sends again.

Dead tokens: 404 UNREGISTERED, and 400 INVALID_ARGUMENT about the token itself (not any
400: a malformed request must not delete tokens). 403 (SENDER_ID_MISMATCH,
PERMISSION_DENIED) is a failure, not a dead token: it also follows from wrong credentials,
which must not wipe every device's token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from parley_push.providers.base import (
    Notification,
    Outcome,
    dead,
    failed,
    retry_or_failed,
    sent,
    unreachable,
)
from parley_push.providers.http import Answer, Unreachable, post
from parley_push.providers.http1_client import Http1Client

FCM_ENDPOINT = "https://fcm.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME_SECONDS = 3600
REFRESH_MARGIN_SECONDS = 60.0


def _https_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} is not an http(s) URL: {value!r}")
    return value.rstrip("/")


@dataclass(frozen=True)
class FcmCredentials:
    project_id: str
    client_email: str
    private_key_pem: str = field(repr=False)
    private_key_id: str
    token_uri: str
    endpoint: str = FCM_ENDPOINT

    @classmethod
    def from_service_account(cls, json_text: str, endpoint: str = FCM_ENDPOINT) -> FcmCredentials:
        """Reads a service account key file (JSON); ValueError saying what is wrong."""
        try:
            account = json.loads(json_text)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the service account is not JSON: {exc}") from exc
        if not isinstance(account, dict):
            raise ValueError("the service account is not a JSON object")
        kind = account.get("type", "service_account")
        if kind != "service_account":
            raise ValueError(f"the JSON is a {kind!r} key, not a service account")
        values: dict[str, str] = {}
        for name in ("project_id", "client_email", "private_key", "private_key_id", "token_uri"):
            value = account.get(name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"the service account has no {name}")
            values[name] = value.strip() if name != "private_key" else value
        _rsa_key(values["private_key"])
        if "@" not in values["client_email"]:
            raise ValueError(f"client_email is not an email address: {values['client_email']!r}")
        if "/" in values["project_id"]:
            raise ValueError(f"project_id is not a project ID: {values['project_id']!r}")
        return cls(
            project_id=values["project_id"],
            client_email=values["client_email"],
            private_key_pem=values["private_key"],
            private_key_id=values["private_key_id"],
            token_uri=_https_url(values["token_uri"], "token_uri"),
            endpoint=_https_url(endpoint, "the FCM endpoint"),
        )


def _rsa_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"private_key is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("private_key is not an RSA key")
    return key


def service_account_assertion(
    credentials: FcmCredentials, key: rsa.RSAPrivateKey, now: float
) -> str:
    """The signed JWT traded for an access token (Google's service account OAuth flow)."""
    issued = int(now)
    claims = {
        "iss": credentials.client_email,
        "scope": SCOPE,
        "aud": credentials.token_uri,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME_SECONDS,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": credentials.private_key_id})


def message_body(token: str, notification: Notification) -> dict[str, Any]:
    """The messages:send request: a data message (the app shows or rings itself)."""
    android: dict[str, Any] = {"priority": "high", "ttl": f"{max(0, notification.ttl_seconds)}s"}
    if notification.collapse_id:
        android["collapse_key"] = notification.collapse_id
    return {
        "message": {
            "token": token,
            "data": {"parley": notification.payload, "kind": notification.kind},
            "android": android,
        }
    }


def _error(response: Answer) -> tuple[str, str, list[dict[str, Any]]]:
    """(status word, message, details) of a Google API error answer, blank when unreadable."""
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return "", response.text[:200], []
    if not isinstance(error, dict):
        return "", str(error)[:200], []
    details = error.get("details")
    return (
        str(error.get("status", "")),
        str(error.get("message", "")),
        [d for d in details if isinstance(d, dict)] if isinstance(details, list) else [],
    )


def _error_codes(details: list[dict[str, Any]]) -> set[str]:
    return {str(d["errorCode"]) for d in details if "errorCode" in d}


def _names_the_token(message: str, details: list[dict[str, Any]]) -> bool:
    for detail in details:
        for violation in detail.get("fieldViolations") or ():
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                return True
    return "registration token" in message.lower()


def classify(response: Answer) -> Outcome:
    """What one messages:send answer means (401 is handled by the sender before this)."""
    status = response.status_code
    if 200 <= status < 300:
        name = ""
        try:
            name = str(response.json().get("name", ""))
        except (ValueError, AttributeError):
            pass
        return sent(status, name)
    word, message, details = _error(response)
    codes = _error_codes(details)
    reason = " ".join(part for part in (word, ",".join(sorted(codes)), message) if part)
    if "UNREGISTERED" in codes:  # 404: the app was uninstalled or the token expired
        return dead(status, reason)
    if status == 400 and word == "INVALID_ARGUMENT" and _names_the_token(message, details):
        return dead(status, reason)
    return retry_or_failed(status, reason or f"HTTP {status}", response.headers.get("retry-after"))


@dataclass
class _AccessToken:
    value: str
    renew_at: float


class _AuthFailed(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


def _retrieve(task: asyncio.Task[_AccessToken]) -> None:
    """Marks a failed exchange's error seen (its waiters may all have been cancelled)."""
    if not task.cancelled():
        task.exception()


class FcmSender:
    """Sends through FCM with one service account; one keep-alive client for all sends."""

    provider = "fcm"

    def __init__(
        self,
        credentials: FcmCredentials,
        *,
        ca_file: str | Path | None = None,
        clock: Callable[[], float] = time.time,
        max_connections: int = 100,
    ) -> None:
        self.credentials = credentials
        self._key = _rsa_key(credentials.private_key_pem)
        self._clock = clock
        self._client = Http1Client(ca_file, max_connections)
        self._url = f"{credentials.endpoint}/v1/projects/{credentials.project_id}/messages:send"
        self._token: _AccessToken | None = None
        self._exchange: asyncio.Task[_AccessToken] | None = None  # the one under way
        self.token_fetches = 0  # access tokens obtained (for tests and metrics)

    async def send(self, token: str, notification: Notification) -> Outcome:
        body = json.dumps(message_body(token, notification), separators=(",", ":"))
        stale: str | None = None
        for _attempt in range(2):
            try:
                bearer = await self._access_token(stale)
            except _AuthFailed as exc:
                return exc.outcome
            try:
                response = await post(
                    self._client,
                    self._url,
                    content=body,
                    headers={
                        "authorization": f"Bearer {bearer}",
                        "content-type": "application/json; charset=utf-8",
                    },
                )
            except Unreachable as exc:
                return unreachable(exc)
            if response.status_code != 401:
                return classify(response)
            stale = bearer  # renew once, then send again
        word, message, _ = _error(response)
        return failed(401, " ".join(p for p in (word, message) if p) or "HTTP 401")

    async def _access_token(self, stale: str | None = None) -> str:
        """The cached access token, or a new one (`stale`: a token the API refused).

        Sends that need a new token while an exchange is under way wait for that one and
        share its answer, token or failure: one exchange however many sends wait.
        """
        current = self._token
        if current is not None and current.value != stale and self._clock() < current.renew_at:
            return current.value
        if current is not None and current.value == stale:
            self._token = None  # later sends wait for the renewal rather than reuse it
        exchange = self._exchange
        if exchange is None:
            exchange = self._exchange = asyncio.create_task(self._exchange_token())
            exchange.add_done_callback(_retrieve)
        fresh = await asyncio.shield(exchange)
        return fresh.value

    async def _exchange_token(self) -> _AccessToken:
        try:
            fresh = await self._fetch_token()
            self._token = fresh
            return fresh
        finally:
            self._exchange = None

    async def _fetch_token(self) -> _AccessToken:
        now = self._clock()
        assertion = service_account_assertion(self.credentials, self._key, now)
        try:
            response = await post(
                self._client,
                self.credentials.token_uri,
                data={"grant_type": JWT_BEARER_GRANT, "assertion": assertion},
            )
        except Unreachable as exc:
            raise _AuthFailed(unreachable(exc)) from exc
        status = response.status_code
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if status != 200:
            reason = (
                " ".join(str(answer[k]) for k in ("error", "error_description") if answer.get(k))
                or response.text[:200]
            )
            reason = f"access token refused: {reason}"
            raise _AuthFailed(retry_or_failed(status, reason, response.headers.get("retry-after")))
        value = answer.get("access_token")
        lifetime = answer.get("expires_in", 3600)
        if not isinstance(value, str) or not value or not isinstance(lifetime, int | float):
            raise _AuthFailed(failed(status, "access token answer without access_token"))
        self.token_fetches += 1
        return _AccessToken(value, now + float(lifetime) - REFRESH_MARGIN_SECONDS)

    async def close(self) -> None:
        if self._exchange is not None:
            self._exchange.cancel()
        await self._client.aclose()
