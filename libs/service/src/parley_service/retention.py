"""Retention: rows older than a service's retention time are deleted, in batches.

A service gives the `Purger` its delete (`delete(db, cutoff, limit)`: delete up to `limit`
of the oldest rows before the cutoff, skipping rows another replica holds, and return how
many went) and a counter of what went. Every replica runs a round every `every_seconds`,
from the injected clock; each round deletes in batches of `batch`, so no transaction holds
many rows for long, and replicas purging at once skip each other's rows instead of waiting
for them. `purge(now)` is one round as of the time given (tests choose it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from parley_protocol.clock import Clock
from parley_service import tasks
from parley_service.logs import get_logger

log = get_logger("parley.retention")

PURGE_BATCH = 5000

Delete = Callable[[Any, datetime, int], Awaitable[int]]


class Purger:
    def __init__(
        self,
        name: str,
        db: Any,
        clock: Clock,
        retention_seconds: float,
        every_seconds: float,
        delete: Delete,
        purged: Counter,
        batch: int = PURGE_BATCH,
    ) -> None:
        self._name = name
        self._db = db
        self._clock = clock
        self._retention = retention_seconds
        self._every = every_seconds
        self._delete = delete
        self._purged = purged
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def purge(self, now_seconds: float | None = None) -> int:
        """One round, as of `now_seconds` (the clock's time by default): delete every row
        older than the retention time; return how many went."""
        now = self._clock.time() if now_seconds is None else now_seconds
        cutoff = datetime.fromtimestamp(now - self._retention, UTC)
        total = 0
        while True:
            deleted = await self._delete(self._db, cutoff, self._batch)
            total += deleted
            self._purged.inc(deleted)
            if deleted < self._batch:
                break
        if total:
            log.info("purged", what=self._name, count=total, retention_seconds=self._retention)
        return total

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{self._name}-purge")

    async def stop(self) -> None:
        await tasks.stop(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.purge()
            except Exception as exc:  # the database is down: the next round catches up
                log.warning("purge_failed", what=self._name, error=repr(exc))
            await asyncio.sleep(self._every)
