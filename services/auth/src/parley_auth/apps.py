"""Applications as the request path sees them: looked up by key, secret opened, cached briefly.

Registration needs the decrypted secret on every request; a short in-memory cache keeps
that to one query and one AES-GCM open per application per `ttl` seconds. A secret
rotation is announced over LISTEN/NOTIFY and evicts the entry at once on every replica.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from parley_auth import store
from parley_auth.secrets_box import application_secret_context
from parley_protocol.clock import Clock
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.secrets_box import SecretBox

MAX_CACHED_APPS = 10_000


@dataclass(frozen=True)
class AppInfo:
    id: uuid.UUID
    key: str
    account_id: uuid.UUID
    name: str
    environment: str
    secret: str

    def __repr__(self) -> str:  # never show the secret
        return f"AppInfo(key={self.key!r}, environment={self.environment!r})"


class AppDirectory:
    def __init__(self, db: Any, box: SecretBox, clock: Clock, ttl_seconds: float) -> None:
        self._db = db
        self._box = box
        self._clock = clock
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, AppInfo]] = {}
        self._loading: dict[str, asyncio.Future[AppInfo | None]] = {}
        # Bumped by invalidate(): a load that started before it must not fill the cache.
        self._generation = 0

    async def find(self, key: str) -> AppInfo | None:
        """The application with this key, or None; concurrent misses share one query."""
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock.monotonic():
            return cached[1]
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(key))
            self._loading[key] = loading
            loading.add_done_callback(lambda done: self._forget_load(key, done))
        return await asyncio.shield(loading)

    async def require(self, key: str, environment: str) -> AppInfo:
        """The application, or UNKNOWN_APPLICATION / WRONG_ENVIRONMENT."""
        app = await self.find(key)
        if app is None:
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNKNOWN_APPLICATION,
                f"no application has the key {key}",
                "application_key",
            )
        if app.environment != environment:
            raise ParleyError(
                ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT,
                f"application {key} belongs to the {app.environment} environment; "
                f"this is the {environment} environment",
                "application_key",
            )
        return app

    def invalidate(self, key: str | None = None) -> None:
        """Forget one application (after its secret changed), or all of them."""
        self._generation += 1
        if key is None:
            self._cache.clear()
            self._loading.clear()
        else:
            self._cache.pop(key, None)
            self._loading.pop(key, None)

    def _forget_load(self, key: str, done: asyncio.Future[AppInfo | None]) -> None:
        if self._loading.get(key) is done:
            del self._loading[key]

    async def _load(self, key: str) -> AppInfo | None:
        started, generation = self._clock.monotonic(), self._generation
        row = await store.get_application_by_key(self._db, key)
        if row is None:
            return None
        app = AppInfo(
            id=row.id,
            key=row.key,
            account_id=row.account_id,
            name=row.name,
            environment=row.environment,
            secret=self._box.open_text(row.secret_encrypted, application_secret_context(row.key)),
        )
        if self._ttl > 0 and generation == self._generation:
            if len(self._cache) >= MAX_CACHED_APPS:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (started + self._ttl, app)
        return app
