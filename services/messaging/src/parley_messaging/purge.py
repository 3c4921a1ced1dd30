"""Retention: messages older than the retention time are deleted, with their recipient and
acknowledgement rows, and nothing else.

`purge_expired` is the whole job for a given time (tests call it with the time they choose);
the `Purger` runs it on every replica every `every_seconds`, from the injected clock. Each
round deletes in batches of PURGE_BATCH, so no transaction holds many rows for long, and
replicas purging at once skip each other's rows instead of waiting for them.
"""

from __future__ import annotations

import asyncio

from parley_messaging import store
from parley_messaging.metrics import PURGED
from parley_messaging.records import to_datetime
from parley_messaging.store import Db
from parley_protocol.clock import Clock
from parley_service import tasks
from parley_service.logs import get_logger

log = get_logger("parley.messaging.purge")

PURGE_BATCH = 5000


async def purge_expired(
    db: Db, now_seconds: float, retention_seconds: float, batch: int = PURGE_BATCH
) -> int:
    """Delete every message accepted before `now_seconds - retention_seconds`; return how
    many were deleted."""
    cutoff = to_datetime(int((now_seconds - retention_seconds) * 1000))
    total = 0
    while True:
        deleted = await store.delete_messages_before(db, cutoff, batch)
        total += deleted
        PURGED.inc(deleted)
        if deleted < batch:
            return total


class Purger:
    def __init__(
        self, db: Db, clock: Clock, retention_seconds: float, every_seconds: float
    ) -> None:
        self._db = db
        self._clock = clock
        self._retention = retention_seconds
        self._every = every_seconds
        self._task: asyncio.Task[None] | None = None

    async def purge(self, now_seconds: float | None = None) -> int:
        """One round, as of `now_seconds` (the clock's time by default)."""
        now = self._clock.time() if now_seconds is None else now_seconds
        deleted = await purge_expired(self._db, now, self._retention)
        if deleted:
            log.info("messages_purged", count=deleted, retention_seconds=self._retention)
        return deleted

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="messaging-purge")

    async def stop(self) -> None:
        await tasks.stop(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.purge()
            except Exception as exc:  # the database is down: the next round catches up
                log.warning("purge_failed", error=repr(exc))
            await asyncio.sleep(self._every)
