"""Each application's provider credentials: stored sealed in the `push` schema, opened with
the master key, and turned into one long-lived sender per application and provider.

A stored credential is a JSON document, sealed (AES-256-GCM) and bound to its application
and provider:

    fcm:       {"service_account": "<the service account JSON>", "endpoint": "https://..."}
    apns:      {"private_key": "<the .p8 PEM>", "team_id": ..., "key_id": ..., "topic": ...,
                "endpoint": "https://..."}
    web_push:  {"private_key": "<PEM or base64url scalar>", "subject": "mailto:..."}

`parse` checks a document the way the senders will read it, so the admin CLI refuses bad
credentials before they are stored.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from parley_protocol.clock import Clock
from parley_push import store
from parley_push.providers.apns import APNS_PRODUCTION, ApnsCredentials, ApnsSender
from parley_push.providers.base import ProviderSender
from parley_push.providers.fcm import FCM_ENDPOINT, FcmCredentials, FcmSender
from parley_push.providers.web_push import WebPushCredentials, WebPushSender
from parley_push.tokens import provider_name
from parley_service.logs import get_logger
from parley_service.secrets_box import SecretBox

log = get_logger("parley.push.credentials")

Credentials = FcmCredentials | ApnsCredentials | WebPushCredentials


def context(application_key: str, provider: str) -> str:
    """What a sealed credential is bound to."""
    return f"parley.push.credentials:{application_key}:{provider}"


def parse(provider: str, document: dict[str, Any]) -> Credentials:
    """The credentials a document holds; ValueError saying what is wrong."""

    def text(key: str, default: str | None = None) -> str:
        value = document.get(key, default)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{provider} credentials need {key!r} (text)")
        return value

    if provider == "fcm":
        return FcmCredentials.from_service_account(
            text("service_account"), text("endpoint", FCM_ENDPOINT)
        )
    if provider == "apns":
        return ApnsCredentials.from_p8(
            text("private_key"),
            team_id=text("team_id"),
            key_id=text("key_id"),
            topic=text("topic"),
            endpoint=text("endpoint", APNS_PRODUCTION),
        )
    if provider == "web_push":
        return WebPushCredentials.from_vapid(text("private_key"), text("subject"))
    raise ValueError(f"unknown provider {provider!r}")


def seal(box: SecretBox, application_key: str, provider: str, document: dict[str, Any]) -> bytes:
    parse(provider, document)
    return box.seal_text(json.dumps(document), context(application_key, provider))


def open_sealed(box: SecretBox, row: store.CredentialsRow) -> dict[str, Any]:
    opened = json.loads(
        box.open_text(row.sealed, context(row.application_key, provider_name(row.provider)))
    )
    if not isinstance(opened, dict):
        raise ValueError("stored credentials are not a JSON object")
    return opened


def make_sender(credentials: Credentials, ca_file: str | None) -> ProviderSender:
    if isinstance(credentials, FcmCredentials):
        return FcmSender(credentials, ca_file=ca_file)
    if isinstance(credentials, ApnsCredentials):
        return ApnsSender(credentials, ca_file=ca_file)
    return WebPushSender(credentials, ca_file=ca_file)


@dataclass
class _Entry:
    sender: ProviderSender | None  # None: the application has no such credentials
    updated_at: object
    checked_at: float


class Senders:
    """One sender per application and provider, made from the stored credentials and kept;
    the row is read again after `cache_seconds`, and a changed one replaces the sender."""

    def __init__(
        self, db: store.Db, box: SecretBox, ca_file: str | None, cache_seconds: float, clock: Clock
    ) -> None:
        self._db = db
        self._box = box
        self._ca_file = ca_file or None
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._entries: dict[tuple[str, int], _Entry] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def get(self, application_key: str, provider: int) -> ProviderSender | None:
        key = (application_key, provider)
        entry = self._entries.get(key)
        if entry is not None and self._clock.monotonic() - entry.checked_at < self._cache_seconds:
            return entry.sender
        # One reader per application and provider: concurrent sends wait for its sender
        # instead of each making (and leaking) one.
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            return await self._refresh(key)

    async def _refresh(self, key: tuple[str, int]) -> ProviderSender | None:
        application_key, provider = key
        entry = self._entries.get(key)
        now = self._clock.monotonic()
        if entry is not None and now - entry.checked_at < self._cache_seconds:
            return entry.sender
        row = await store.credentials(self._db, application_key, provider)
        if entry is not None and row is not None and row.updated_at == entry.updated_at:
            entry.checked_at = now
            return entry.sender
        sender: ProviderSender | None = None
        if row is not None:
            try:
                sender = make_sender(
                    parse(provider_name(provider), open_sealed(self._box, row)), self._ca_file
                )
            except ValueError as exc:
                log.error(
                    "credentials_unusable",
                    app=application_key,
                    provider=provider_name(provider),
                    error=str(exc),
                )
        if entry is not None and entry.sender is not None:
            await entry.sender.close()
        self._entries[key] = _Entry(sender, row.updated_at if row else None, now)
        return sender

    async def close(self) -> None:
        for entry in self._entries.values():
            if entry.sender is not None:
                await entry.sender.close()
        self._entries.clear()
