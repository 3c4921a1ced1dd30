"""The redelivery sweeper: what was committed but not told is told again.

Device events are at most once, and a replica may die between a commit and the publish of
its events. Every replica therefore sweeps, every `every_seconds` (times from the injected
clock), in rounds of at most `batch` rows per kind:

- messages:  accepted more than `after_seconds` ago and never told (told_at NULL):
             MessageIncoming to the recipients and MessageSent to the sender, then told_at.
- receipts:  recipient rows delivered (read) more than `after_seconds` ago whose receipt
             was never told: MessageDelivered (MessageRead) to the sender, then marked.
- incoming:  recipient rows not delivered, of messages told more than `after_seconds` ago
             and accepted within `max_age_seconds`, not taken by a sweeper in the last
             `after_seconds`: MessageIncoming again to those recipients with a device online
             that announced messaging (the others fetch when they come back).

The first two lock the rows they take (FOR NO KEY UPDATE SKIP LOCKED) in a transaction that
lasts until their events were published and marked, so two replicas never take the same
rows and a replica that dies mid-round leaves them to the next. The third takes its rows in
one statement that sets their retold_at. A failed round is logged; the next one catches up.
Clients drop the duplicates a re-tell may cause.

`redeliver(now)` is one round (tests call it with the time they choose).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

from parley_messaging import records, store
from parley_messaging.commits import Receipt
from parley_messaging.events import MessageEvents
from parley_messaging.metrics import REDELIVER_ROUNDS, RETOLD
from parley_messaging.records import to_datetime
from parley_messaging.store import Db
from parley_protocol.clock import Clock
from parley_protocol.errors import ParleyError
from parley_service import tasks
from parley_service.logs import get_logger
from parley_service.presence import MAX_QUERY_USERS, PresenceReader

log = get_logger("parley.messaging.redeliver")

# Rows taken per kind in one round.
REDELIVER_BATCH = 500
# A round's transaction (and its locks) lasts no longer than this.
ROUND_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Round:
    """What one round told again."""

    messages: int = 0
    delivered: int = 0
    read: int = 0
    incoming: int = 0


class Redeliverer:
    def __init__(
        self,
        pool: Db,
        events: MessageEvents,
        presence: PresenceReader,
        clock: Clock,
        every_seconds: float,
        after_seconds: float,
        max_age_seconds: float,
        batch: int = REDELIVER_BATCH,
    ) -> None:
        self._pool = pool
        self._events = events
        self._presence = presence
        self._clock = clock
        self._every = every_seconds
        self._after_ms = int(after_seconds * 1000)
        self._max_age_ms = int(max_age_seconds * 1000)
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="messaging-redeliver")

    async def stop(self) -> None:
        await tasks.stop(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.redeliver()
            except Exception as exc:  # the database is down: the next round catches up
                REDELIVER_ROUNDS.labels("failed").inc()
                log.warning("redeliver_failed", error=repr(exc))

    async def redeliver(self, now_seconds: float | None = None) -> Round:
        """One round, as of `now_seconds` (the clock's time by default)."""
        now_ms = int((self._clock.time() if now_seconds is None else now_seconds) * 1000)
        messages = await self._messages(now_ms)
        delivered = await self._receipts(now_ms, read=False)
        read = await self._receipts(now_ms, read=True)
        incoming = await self._incoming(now_ms)
        done = Round(messages, delivered, read, incoming)
        REDELIVER_ROUNDS.labels("ok").inc()
        if messages or delivered or read or incoming:
            log.info(
                "messages_retold",
                messages=messages,
                delivered=delivered,
                read=read,
                incoming=incoming,
            )
        return done

    async def _messages(self, now_ms: int) -> int:
        """Messages never told: incoming and sent, then told_at."""
        async with asyncio.timeout(ROUND_TIMEOUT_SECONDS):
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await store.claim_untold_messages(
                    conn, to_datetime(now_ms - self._after_ms), self._batch
                )
                if not rows:
                    return 0
                taken = await asyncio.gather(
                    *(
                        self._events.message_accepted(
                            row.application_key, records.message_of(row.message)
                        )
                        for row in rows
                    )
                )
                told = [row.message.seq for row, ok in zip(rows, taken, strict=True) if ok]
                if told:
                    await store.mark_messages_told(conn, told, to_datetime(now_ms))
        RETOLD.labels("message").inc(len(told))
        return len(told)

    async def _receipts(self, now_ms: int, read: bool) -> int:
        """Delivered (read) receipts never told: to the senders, then marked."""
        kind = "read" if read else "delivered"
        async with asyncio.timeout(ROUND_TIMEOUT_SECONDS):
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await store.claim_untold_receipts(
                    conn, to_datetime(now_ms - self._after_ms), self._batch, read
                )
                if not rows:
                    return 0
                by_app: dict[str, list[Receipt]] = defaultdict(list)
                for row in rows:
                    by_app[row.application_key].append(
                        Receipt(
                            row.seq,
                            row.message_id,
                            row.sender_id,
                            row.recipient_id,
                            records.to_ms(row.at),
                        )
                    )
                apps = list(by_app)
                tell = self._events.read if read else self._events.delivered
                results = await asyncio.gather(*(tell(app, by_app[app]) for app in apps))
                seqs: list[int] = []
                recipients: list[str] = []
                for app, taken in zip(apps, results, strict=True):
                    for receipt, ok in zip(by_app[app], taken, strict=True):
                        if ok:
                            seqs.append(receipt.seq)
                            recipients.append(receipt.user_id)
                if seqs:
                    await store.mark_receipts_told(
                        conn, seqs, recipients, to_datetime(now_ms), read
                    )
        RETOLD.labels(kind).inc(len(seqs))
        return len(seqs)

    async def _incoming(self, now_ms: int) -> int:
        """Undelivered messages again to their recipients with a device online."""
        rows = await store.claim_undelivered(
            self._pool,
            to_datetime(now_ms),
            to_datetime(now_ms - self._after_ms),
            to_datetime(now_ms - self._max_age_ms),
            self._batch,
        )
        if not rows:
            return 0
        users: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            users[row.application_key].add(row.recipient_id)
        online: set[tuple[str, str]] = set()
        for app, found in users.items():
            ordered = sorted(found)
            for start in range(0, len(ordered), MAX_QUERY_USERS):
                chunk = ordered[start : start + MAX_QUERY_USERS]
                try:
                    devices = await self._presence.devices(app, chunk)
                except ParleyError as exc:  # these rows come back after `after_seconds`
                    log.warning("redeliver_presence_unavailable", app=app, error=str(exc))
                    continue
                online.update((app, u) for u in chunk if any(d.messaging for d in devices[u]))
        due: dict[int, list[str]] = defaultdict(list)
        for row in rows:
            if (row.application_key, row.recipient_id) in online:
                due[row.seq].append(row.recipient_id)
        if not due:
            return 0
        messages = await store.messages_by_seq(self._pool, list(due))
        sends = [(seq, messages[seq], sorted(due[seq])) for seq in sorted(due) if seq in messages]
        results = await asyncio.gather(
            *(
                self._events.incoming(found.application_key, records.message_of(found.message), to)
                for _, found, to in sends
            )
        )
        count = sum(sum(taken) for taken in results)
        RETOLD.labels("incoming").inc(count)
        return count
