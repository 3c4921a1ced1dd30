"""The writers: take call reports from the stream STATS and store them in batches.

Every replica pulls from the one durable consumer (STATS_CONSUMER), so replicas share the
reports. A batch is up to `stats_batch_max` records, or what arrived within
`stats_batch_window_seconds` of the first; it is written in one transaction (one INSERT,
ON CONFLICT DO NOTHING on application, call and device) and acknowledged after the commit.
So a record is stored once however often it is delivered, and a replica that dies holding
a batch loses none of it: JetStream hands it to another after the ack wait.

- malformed:   a record that cannot be read or breaks the report rules is logged, counted
               and terminated (never delivered again); the rest of its batch goes on;
- database down, or failing otherwise (permissions, a timeout, ...): the batch is handed
  back (nak) and written later;
- a batch the database refuses for its content (a data or constraint error, which the
  rules should prevent) is written record by record, and a record refused alone is
  malformed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

import asyncpg
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from parley_protocol import subjects
from parley_protocol.clock import Clock
from parley_protocol.errors import ParleyError
from parley_service import tasks
from parley_service.assets import JetStreamAssets, asset_missing
from parley_service.db import is_unavailable
from parley_service.logs import get_logger
from parley_stats import store
from parley_stats.metrics import BATCH_SIZE, INSERT_SECONDS, REPORTS_INGESTED, observe_quality
from parley_stats.records import ReportRow, parse_record, row_of
from parley_stats.settings import StatsSettings

log = get_logger("parley.stats.ingest")

# Errors that say "this content cannot be stored", as opposed to "not now".
CONTENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)

# How long one pull waits for the first record of a batch before asking again.
PULL_SECONDS = 1.0
# After the stream, NATS or the database failed: how long before trying again.
RETRY_SECONDS = 1.0
# How long stopping waits for the batch under way before cutting it off (it is then
# delivered again: nothing is lost, the insert skips what was committed).
STOP_SECONDS = 5.0
# A fetch shorter than this is not worth a pull request.
MIN_FETCH_SECONDS = 0.01


class ReportWriters:
    def __init__(
        self,
        settings: StatsSettings,
        nc: NATS,
        assets: JetStreamAssets,
        db: store.Db,
        clock: Clock,
    ) -> None:
        self._js: JetStreamContext = nc.jetstream()
        self._assets = assets
        self._db = db
        self._clock = clock
        self._batch_max = settings.stats_batch_max
        self._window = settings.stats_batch_window_seconds
        self._max_age_ms = int(settings.stats_report_max_age_seconds * 1000)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._sub: JetStreamContext.PullSubscription | None = None

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="stats-writers")

    async def stop(self) -> None:
        """Take no new batch; let the one under way finish (for a while)."""
        self._stopping = True
        task, self._task = self._task, None
        if task is None:
            return
        await asyncio.wait({task}, timeout=STOP_SECONDS)
        await tasks.stop(task)

    async def _run(self) -> None:
        try:
            await self._pull()
        finally:
            # A pull subscription left open keeps the connection's drain waiting.
            await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        self._sub = None

    async def _pull(self) -> None:
        while not self._stopping:
            try:
                if self._sub is None:
                    self._sub = await self._js.pull_subscribe_bind(
                        durable=subjects.STATS_CONSUMER, stream=subjects.STATS_STREAM
                    )
                batch = await self._batch(self._sub)
            except asyncio.CancelledError:
                raise
            except (nats.errors.TimeoutError, TimeoutError):
                continue  # no report within the pull's time
            except Exception as exc:
                if asset_missing(exc):
                    self._assets.lost(f"consumer {subjects.STATS_STREAM}/{subjects.STATS_CONSUMER}")
                log.warning("pull_failed", error=repr(exc))
                await self._unsubscribe()
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if not await self.write(batch):
                await asyncio.sleep(RETRY_SECONDS)

    async def _batch(self, sub: JetStreamContext.PullSubscription) -> list[Msg]:
        """Up to batch_max records: waits for the first, then up to the window for more."""
        batch = await sub.fetch(self._batch_max, timeout=PULL_SECONDS)
        deadline = time.monotonic() + self._window
        while len(batch) < self._batch_max and not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining < MIN_FETCH_SECONDS:
                break
            try:
                batch += await sub.fetch(self._batch_max - len(batch), timeout=remaining)
            except (nats.errors.TimeoutError, TimeoutError):
                break
        return batch

    async def write(self, msgs: list[Msg]) -> bool:
        """Store a batch and acknowledge it; False when the database could not be reached
        (the batch is handed back, to be delivered again after RETRY_SECONDS)."""
        rows: list[ReportRow] = []
        kept: list[Msg] = []
        for msg in msgs:
            try:
                record = parse_record(msg.data, self._max_age_ms)
            except ParleyError as err:
                await _malformed(msg, err.reason, err.field)
                continue
            rows.append(row_of(record))
            kept.append(msg)
        if not rows:
            return True
        try:
            inserted = await self._insert(rows)
        except CONTENT_ERRORS as exc:
            log.warning("batch_refused", reports=len(rows), error=repr(exc))
            return await self._write_each(rows, kept)
        except Exception as exc:
            _not_written(len(rows), exc)
            await _hand_back(kept)
            return False
        await self._done(rows, kept, inserted)
        return True

    async def _insert(self, rows: list[ReportRow]) -> set[tuple[str, str, str]]:
        started = time.perf_counter()
        now = datetime.fromtimestamp(self._clock.time(), UTC)
        async with self._db.acquire() as conn, conn.transaction():
            inserted = await store.insert_reports(conn, rows, now)
        INSERT_SECONDS.observe(time.perf_counter() - started)
        BATCH_SIZE.observe(len(rows))
        return inserted

    async def _write_each(self, rows: list[ReportRow], msgs: list[Msg]) -> bool:
        for index, (row, msg) in enumerate(zip(rows, msgs, strict=True)):
            try:
                inserted = await self._insert([row])
            except CONTENT_ERRORS as exc:
                await _malformed(msg, f"the database refused it: {exc}", "")
                continue
            except Exception as exc:
                _not_written(1, exc)
                await _hand_back(msgs[index:])  # this one and those after it
                return False
            await self._done([row], [msg], inserted)
        return True

    async def _done(
        self, rows: list[ReportRow], msgs: list[Msg], inserted: set[tuple[str, str, str]]
    ) -> None:
        stored = len(inserted)
        REPORTS_INGESTED.labels("stored").inc(stored)
        REPORTS_INGESTED.labels("duplicate").inc(len(rows) - stored)
        for row in rows:
            if (row.application_key, row.call_id, row.device_instance) in inserted:
                observe_quality(row)
        for msg in msgs:
            with contextlib.suppress(Exception):  # unacknowledged: delivered again, skipped
                await msg.ack()


async def _malformed(msg: Msg, reason: str, field: str) -> None:
    REPORTS_INGESTED.labels("malformed").inc()
    log.error(
        "report_malformed",
        subject=msg.subject,
        sequence=_sequence(msg),
        reason=reason,
        field=field or None,
    )
    with contextlib.suppress(Exception):
        await msg.term()


def _not_written(count: int, exc: Exception) -> None:
    if is_unavailable(exc):
        log.warning("batch_not_written", reports=count, error=repr(exc))
    else:
        log.error("batch_not_written", reports=count, error=repr(exc))


async def _hand_back(msgs: list[Msg]) -> None:
    for msg in msgs:
        with contextlib.suppress(Exception):
            await msg.nak(delay=RETRY_SECONDS)


def _sequence(msg: Msg) -> int | None:
    try:
        return msg.metadata.sequence.stream
    except Exception:
        return None
