"""Token signing keys: Ed25519 key pairs kept sealed in the database, published as JWKS.

Exactly one key is active (it signs); rotation retires it in the same transaction that
adds its successor. Retired keys stay in the JWKS for one token lifetime, so every token
signed before a rotation still verifies until it expires.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from parley_auth import store
from parley_auth.secrets_box import signing_key_context
from parley_protocol.clock import Clock
from parley_service import access_tokens
from parley_service.logs import get_logger
from parley_service.secrets_box import SecretBox

log = get_logger("parley.auth.keys")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(private_key: Ed25519PrivateKey) -> dict[str, str]:
    """The public JWK (RFC 8037), its kid being the RFC 7638 thumbprint."""
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    x = _b64url(raw)
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    kid = _b64url(hashlib.sha256(canonical.encode("ascii")).digest())
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": kid,
        "alg": access_tokens.ALGORITHM,
        "use": "sig",
    }


def to_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def new_signing_key(box: SecretBox, created_at: datetime) -> store.SigningKey:
    private_key = Ed25519PrivateKey.generate()
    jwk = public_jwk(private_key)
    der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return store.SigningKey(
        kid=jwk["kid"],
        private_key_encrypted=box.seal(der, signing_key_context(jwk["kid"])),
        public_jwk=jwk,
        created_at=created_at,
        retired_at=None,
    )


def open_signing_key(box: SecretBox, key: store.SigningKey) -> Ed25519PrivateKey:
    der = box.open(key.private_key_encrypted, signing_key_context(key.kid))
    private_key = serialization.load_der_private_key(der, password=None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ValueError(f"signing key {key.kid} is not an Ed25519 key")
    return private_key


async def ensure_active_signing_key(db: Any, box: SecretBox, clock: Clock) -> str | None:
    """Create a key if none is active; returns its kid, or None if one existed.

    Safe when replicas start together: creation runs under a transaction-scoped advisory lock.
    """
    async with db.acquire() as conn, conn.transaction():
        await store.lock_signing_keys(conn)
        if await store.get_active_signing_key(conn) is not None:
            return None
        key = new_signing_key(box, to_datetime(clock.time()))
        await store.insert_signing_key(conn, key)
        await store.notify_change(conn, store.SIGNING_KEYS_CHANGED)
    log.info("signing_key_created", kid=key.kid)
    return key.kid


async def rotate_signing_key(db: Any, box: SecretBox, clock: Clock) -> tuple[str, list[str]]:
    """Retire the active key and activate a new one; returns (new kid, retired kids)."""
    now = to_datetime(clock.time())
    async with db.acquire() as conn, conn.transaction():
        await store.lock_signing_keys(conn)
        retired = await store.retire_active_signing_keys(conn, now)
        key = new_signing_key(box, now)
        await store.insert_signing_key(conn, key)
        await store.notify_change(conn, store.SIGNING_KEYS_CHANGED)
    log.info("signing_key_rotated", kid=key.kid, retired=retired)
    return key.kid, retired


@dataclass(frozen=True)
class _Verifying:
    jwk: dict[str, str]
    retired_at: datetime | None


class KeyRing:
    """The keys one replica signs and publishes with, reloaded from the database."""

    def __init__(
        self, box: SecretBox, clock: Clock, token_ttl_seconds: int, grace_seconds: float = 0.0
    ) -> None:
        self._box = box
        self._clock = clock
        # A retired key verifies for one token lifetime plus a grace period: a replica that
        # missed the rotation notice signs with it until its next reload, and clocks differ.
        self._ttl = token_ttl_seconds + grace_seconds
        self._active: tuple[str, Ed25519PrivateKey] | None = None
        self._verifying: list[_Verifying] = []
        self._opened: dict[str, Ed25519PrivateKey] = {}

    async def load(self, db: Any) -> None:
        """Make sure a key is active, then read the keys."""
        await ensure_active_signing_key(db, self._box, self._clock)
        await self.reload(db)

    async def reload(self, db: Any) -> bool:
        """Re-read the keys; True when the set of verifying keys changed."""
        before = {v.jwk.get("kid") for v in self._verifying}
        window_start = to_datetime(self._clock.time()) - timedelta(seconds=self._ttl)
        keys = await store.list_verifying_signing_keys(db, window_start)
        active = next((k for k in keys if k.retired_at is None), None)
        if active is None:
            # Someone retired every key without a successor: make one rather than stop signing.
            await ensure_active_signing_key(db, self._box, self._clock)
            keys = await store.list_verifying_signing_keys(db, window_start)
            active = next(k for k in keys if k.retired_at is None)
        private_key = self._opened.get(active.kid) or open_signing_key(self._box, active)
        self._opened = {active.kid: private_key}
        previous = self._active[0] if self._active else None
        self._active = (active.kid, private_key)
        self._verifying = [_Verifying(k.public_jwk, k.retired_at) for k in keys]
        if previous != active.kid:
            log.info("signing_key_loaded", kid=active.kid, previous=previous)
        return before != {v.jwk.get("kid") for v in self._verifying}

    @property
    def active_kid(self) -> str:
        return self._require_active()[0]

    def sign(self, claims: access_tokens.Claims) -> tuple[str, str]:
        """Sign with the active key; returns (token, kid)."""
        kid, private_key = self._require_active()
        return access_tokens.sign(claims, kid, private_key), kid

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The active key and every key retired less than one token lifetime ago."""
        window_start = to_datetime(self._clock.time()) - timedelta(seconds=self._ttl)
        return {
            "keys": [
                dict(k.jwk)
                for k in self._verifying
                if k.retired_at is None or k.retired_at > window_start
            ]
        }

    def _require_active(self) -> tuple[str, Ed25519PrivateKey]:
        if self._active is None:
            raise RuntimeError("no signing key loaded; call KeyRing.load first")
        return self._active
