"""Keeps a replica's caches current: LISTEN for changes, and re-read keys periodically.

The admin CLI (or another replica) announces on `store.CHANGES_CHANNEL`:
`signing_keys` after a key is created or rotated, `application:<key>` after a secret
changed. Notifications are best effort (a dropped connection misses them), so signing keys
are also re-read every `interval` seconds, and a reconnect empties the application cache.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from parley_auth import store
from parley_auth.apps import AppDirectory
from parley_auth.keys import KeyRing
from parley_service.logs import get_logger

log = get_logger("parley.auth.changes")


class ChangeWatcher:
    def __init__(
        self,
        dsn: str,
        db: Any,
        keys: KeyRing,
        apps: AppDirectory,
        interval: float,
        keys_changed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._keys_changed = keys_changed
        self._dsn = dsn
        self._db = db
        self._keys = keys
        self._apps = apps
        self._interval = interval
        self._conn: Any = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0

    async def start(self) -> None:
        await self._listen()
        self._task = asyncio.create_task(self._run(), name="auth-change-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), timeout=2)
            except Exception:
                conn.terminate()

    async def _listen(self) -> None:
        try:
            conn = await asyncpg.connect(self._dsn, timeout=5)
            await conn.add_listener(store.CHANGES_CHANNEL, self._on_notify)
        except Exception as exc:
            log.warning("change_listener_unavailable", error=str(exc))
            return
        self._conn = conn

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if payload == store.SIGNING_KEYS_CHANGED:
            self._wake.set()
        elif payload.startswith(store.APPLICATION_CHANGED_PREFIX):
            self._apps.invalidate(payload.removeprefix(store.APPLICATION_CHANGED_PREFIX))
            log.info("application_cache_evicted", app=payload)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self._refresh()
            except Exception:
                log.exception("signing_key_reload_failed")

    async def _refresh(self) -> None:
        if self._conn is None or self._conn.is_closed():
            await self._listen()
            if self._conn is not None:
                # Notifications sent while we were away are lost: start afresh.
                self._apps.invalidate()
                log.info("change_listener_reconnected")
        changed = await self._keys.reload(self._db)
        self.reloads += 1
        if changed and self._keys_changed is not None:
            await self._keys_changed()
