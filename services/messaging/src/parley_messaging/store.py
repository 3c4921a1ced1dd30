"""All SQL of the `messaging` schema, one function per query.

Every function takes an asyncpg pool or connection (`db`), so callers choose whether a
query runs alone or inside their transaction (the batched writes of commits.py run several
in one). Queries that serve a batch of requests take parallel arrays and `unnest` them: one
round trip whatever the batch's size. Times are passed in from the injected clock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Both asyncpg.Pool and asyncpg.Connection (asyncpg ships no type hints).
Db = Any


@dataclass(frozen=True)
class NewMessageRow:
    application_key: str
    message_id: uuid.UUID
    sender_id: str
    recipient_ids: Sequence[str]
    text: str
    headers: dict[str, str]
    sent_at: datetime


@dataclass(frozen=True)
class MessageKey:
    application_key: str
    message_id: uuid.UUID


@dataclass(frozen=True)
class MessageHead:
    """Who sent a stored message, and when it was accepted (what a retried send needs)."""

    application_key: str
    message_id: uuid.UUID
    sender_id: str
    sent_at: datetime
    seq: int
    # Its events were taken by the device events (told_at is set).
    told: bool


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    message_id: uuid.UUID
    sender_id: str
    recipient_ids: list[str]
    text: str
    headers: dict[str, str]
    sent_at: datetime


@dataclass(frozen=True)
class AppMessage:
    """A stored message and its application (what the sweeper tells)."""

    application_key: str
    message: StoredMessage


@dataclass(frozen=True)
class ReceiptRow:
    """A recipient row delivered (or read) whose receipt the sender has not been told."""

    application_key: str
    seq: int
    message_id: uuid.UUID
    sender_id: str
    recipient_id: str
    at: datetime


@dataclass(frozen=True)
class Undelivered:
    """A recipient row not delivered yet that the sweeper took to tell again."""

    application_key: str
    seq: int
    recipient_id: str


@dataclass(frozen=True)
class Addressed:
    """A message of a request's ids that is addressed to the request's user."""

    item: int  # the request's index in its batch
    seq: int
    message_id: uuid.UUID
    sender_id: str


@dataclass(frozen=True)
class Marked:
    """A recipient row whose delivered_at (or read_at) a write has just set."""

    seq: int
    recipient_id: str
    at: datetime


# -- sends --------------------------------------------------------------------------------


async def insert_messages(db: Db, rows: Sequence[NewMessageRow]) -> dict[MessageKey, int]:
    """Insert the messages whose (application, message id) is new, in the given order (their
    sequence follows it), with a recipient row for each of their recipients; return the
    sequence of each one inserted. Existing ids are left alone (a retried send): look them
    up with `find_messages`. One statement: run alone, it commits by itself, messages and
    recipients together."""
    ords: list[int] = []
    recipients: list[str] = []
    positions: list[int] = []
    for ord_, row in enumerate(rows, start=1):
        for position, recipient in enumerate(row.recipient_ids):
            ords.append(ord_)
            recipients.append(recipient)
            positions.append(position)
    records = await db.fetch(
        "WITH given AS ("
        "  SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[],"
        "   $6::timestamptz[])"
        "   WITH ORDINALITY AS n(application_key, message_id, sender_id, text, headers, sent_at,"
        "   ord)"
        " ), inserted AS ("
        "  INSERT INTO messaging.messages"
        "   (application_key, message_id, sender_id, text, headers, sent_at)"
        "  SELECT application_key, message_id, sender_id, text, headers, sent_at"
        "  FROM given ORDER BY ord"
        "  ON CONFLICT (application_key, message_id) DO NOTHING"
        "  RETURNING application_key, message_id, seq"
        " ), listed AS ("
        "  INSERT INTO messaging.recipients"
        "   (message_seq, recipient_id, position, application_key)"
        "  SELECT i.seq, r.recipient_id, r.position, i.application_key"
        "  FROM unnest($7::bigint[], $8::text[], $9::smallint[]) AS r(ord, recipient_id, position)"
        "  JOIN given g ON g.ord = r.ord"
        "  JOIN inserted i"
        "   ON i.application_key = g.application_key AND i.message_id = g.message_id"
        " )"
        " SELECT application_key, message_id, seq FROM inserted",
        [r.application_key for r in rows],
        [r.message_id for r in rows],
        [r.sender_id for r in rows],
        [r.text for r in rows],
        [json.dumps(r.headers, separators=(",", ":")) for r in rows],
        [r.sent_at for r in rows],
        ords,
        recipients,
        positions,
    )
    return {MessageKey(r["application_key"], r["message_id"]): r["seq"] for r in records}


async def find_messages(db: Db, keys: Sequence[MessageKey]) -> dict[MessageKey, MessageHead]:
    """The stored messages of these (application, message id) keys."""
    records = await db.fetch(
        "SELECT m.application_key, m.message_id, m.sender_id, m.sent_at, m.seq,"
        " m.told_at IS NOT NULL AS told"
        " FROM unnest($1::text[], $2::uuid[]) AS k(application_key, message_id)"
        " JOIN messaging.messages m"
        "  ON m.application_key = k.application_key AND m.message_id = k.message_id",
        [k.application_key for k in keys],
        [k.message_id for k in keys],
    )
    return {
        MessageKey(r["application_key"], r["message_id"]): MessageHead(
            r["application_key"], r["message_id"], r["sender_id"], r["sent_at"], r["seq"], r["told"]
        )
        for r in records
    }


# -- acknowledgements and reads ------------------------------------------------------------


async def find_addressed(
    db: Db,
    items: Sequence[int],
    application_keys: Sequence[str],
    user_ids: Sequence[str],
    message_ids: Sequence[uuid.UUID],
    cutoffs: Sequence[datetime],
) -> list[Addressed]:
    """Of the (application, user, message id) triples, the messages that exist, are addressed
    to that user, and were sent at or after the cutoff (the retention time); each tagged with
    the request (`items`) it came from."""
    records = await db.fetch(
        "SELECT w.item, m.seq, m.message_id, m.sender_id"
        " FROM unnest($1::int[], $2::text[], $3::text[], $4::uuid[], $5::timestamptz[])"
        "  AS w(item, application_key, user_id, message_id, cutoff)"
        " JOIN messaging.messages m"
        "  ON m.application_key = w.application_key AND m.message_id = w.message_id"
        " JOIN messaging.recipients r ON r.message_seq = m.seq AND r.recipient_id = w.user_id"
        " WHERE m.sent_at >= w.cutoff",
        items,
        application_keys,
        user_ids,
        message_ids,
        cutoffs,
    )
    return [Addressed(r["item"], r["seq"], r["message_id"], r["sender_id"]) for r in records]


async def insert_device_acks(
    db: Db, seqs: Sequence[int], instance_ids: Sequence[uuid.UUID], at: Sequence[datetime]
) -> None:
    """Record that these device instances have these messages (again: no change)."""
    await db.execute(
        "INSERT INTO messaging.device_acks (message_seq, instance_id, acked_at)"
        " SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::timestamptz[])"
        " ON CONFLICT (message_seq, instance_id) DO NOTHING",
        seqs,
        instance_ids,
        at,
    )


async def mark_delivered(
    db: Db, seqs: Sequence[int], recipient_ids: Sequence[str], at: Sequence[datetime]
) -> list[Marked]:
    """Set delivered_at of the (message, recipient) rows that have none; return those rows.

    Rows are locked in key order first (concurrent batches of other replicas lock the same
    way, so they wait instead of deadlocking), and a row another transaction has just
    marked is left out once its lock is free: each recipient is marked once.
    """
    records = await db.fetch(
        "WITH due AS ("
        "  SELECT r.message_seq, r.recipient_id, d.at"
        "  FROM unnest($1::bigint[], $2::text[], $3::timestamptz[]) AS d(seq, recipient_id, at)"
        "  JOIN messaging.recipients r"
        "   ON r.message_seq = d.seq AND r.recipient_id = d.recipient_id"
        "  WHERE r.delivered_at IS NULL"
        "  ORDER BY r.message_seq, r.recipient_id"
        "  FOR UPDATE OF r"
        " )"
        " UPDATE messaging.recipients r SET delivered_at = due.at FROM due"
        " WHERE r.message_seq = due.message_seq AND r.recipient_id = due.recipient_id"
        " RETURNING r.message_seq, r.recipient_id, r.delivered_at",
        seqs,
        recipient_ids,
        at,
    )
    return [Marked(r["message_seq"], r["recipient_id"], r["delivered_at"]) for r in records]


async def mark_read(
    db: Db, seqs: Sequence[int], recipient_ids: Sequence[str], at: Sequence[datetime]
) -> list[Marked]:
    """Set read_at of the (message, recipient) rows that have none; return those rows
    (locked in key order, each marked once: see `mark_delivered`)."""
    records = await db.fetch(
        "WITH due AS ("
        "  SELECT r.message_seq, r.recipient_id, d.at"
        "  FROM unnest($1::bigint[], $2::text[], $3::timestamptz[]) AS d(seq, recipient_id, at)"
        "  JOIN messaging.recipients r"
        "   ON r.message_seq = d.seq AND r.recipient_id = d.recipient_id"
        "  WHERE r.read_at IS NULL"
        "  ORDER BY r.message_seq, r.recipient_id"
        "  FOR UPDATE OF r"
        " )"
        " UPDATE messaging.recipients r SET read_at = due.at FROM due"
        " WHERE r.message_seq = due.message_seq AND r.recipient_id = due.recipient_id"
        " RETURNING r.message_seq, r.recipient_id, r.read_at",
        seqs,
        recipient_ids,
        at,
    )
    return [Marked(r["message_seq"], r["recipient_id"], r["read_at"]) for r in records]


# -- fetch ----------------------------------------------------------------------------------


async def fetch_unacknowledged(
    db: Db,
    application_key: str,
    user_id: str,
    instance_id: uuid.UUID,
    cutoff: datetime,
    limit: int,
) -> list[StoredMessage]:
    """The messages addressed to the user, sent at or after the cutoff, that the device
    instance has not acknowledged, oldest first (by sequence), at most `limit`."""
    records = await db.fetch(
        f"SELECT {_MESSAGE_COLUMNS}"
        " FROM messaging.recipients r"
        " JOIN messaging.messages m ON m.seq = r.message_seq"
        " WHERE r.application_key = $1 AND r.recipient_id = $2 AND m.sent_at >= $4"
        "  AND NOT EXISTS (SELECT 1 FROM messaging.device_acks a"
        "   WHERE a.message_seq = r.message_seq AND a.instance_id = $3)"
        " ORDER BY r.message_seq"
        " LIMIT $5",
        application_key,
        user_id,
        instance_id,
        cutoff,
        limit,
    )
    return [_stored(r) for r in records]


def _stored(r: Any) -> StoredMessage:
    return StoredMessage(
        seq=r["seq"],
        message_id=r["message_id"],
        sender_id=r["sender_id"],
        recipient_ids=list(r["recipient_ids"]),
        text=r["text"],
        headers=json.loads(r["headers"]),
        sent_at=r["sent_at"],
    )


# The columns of a whole message (StoredMessage, and its application) from `m`.
_MESSAGE_COLUMNS = (
    "m.application_key, m.seq, m.message_id, m.sender_id, m.text, m.headers, m.sent_at,"
    " ARRAY(SELECT x.recipient_id FROM messaging.recipients x"
    "  WHERE x.message_seq = m.seq ORDER BY x.position) AS recipient_ids"
)


async def messages_by_seq(db: Db, seqs: Sequence[int]) -> dict[int, AppMessage]:
    """The whole messages of these sequence numbers (those still stored)."""
    records = await db.fetch(
        f"SELECT {_MESSAGE_COLUMNS} FROM messaging.messages m WHERE m.seq = ANY($1::bigint[])",
        list(seqs),
    )
    return {r["seq"]: AppMessage(r["application_key"], _stored(r)) for r in records}


# -- told marks ------------------------------------------------------------------------------
#
# A told mark skips rows another transaction holds (the sweeper, telling the same thing):
# that one marks them, or they are told once more later. Either way nothing waits.


async def mark_messages_told(db: Db, seqs: Sequence[int], at: datetime) -> int:
    """Set told_at of these messages where it is not set; return how many were set."""
    status: str = await db.execute(
        "UPDATE messaging.messages SET told_at = $2"
        " WHERE seq IN (SELECT seq FROM messaging.messages"
        "  WHERE seq = ANY($1::bigint[]) AND told_at IS NULL"
        "  ORDER BY seq FOR NO KEY UPDATE SKIP LOCKED)",
        list(seqs),
        at,
    )
    return int(status.split()[-1])


async def mark_receipts_told(
    db: Db, seqs: Sequence[int], recipient_ids: Sequence[str], at: datetime, read: bool
) -> int:
    """Set delivered_told_at (read_told_at when `read`) of these (message, recipient) rows
    where it is not set; return how many were set."""
    column = "read_told_at" if read else "delivered_told_at"
    status: str = await db.execute(
        f"UPDATE messaging.recipients r SET {column} = $3"
        " FROM (SELECT x.message_seq, x.recipient_id"
        "  FROM unnest($1::bigint[], $2::text[]) AS d(seq, recipient_id)"
        "  JOIN messaging.recipients x"
        "   ON x.message_seq = d.seq AND x.recipient_id = d.recipient_id"
        f"  WHERE x.{column} IS NULL"
        "  ORDER BY x.message_seq, x.recipient_id"
        "  FOR NO KEY UPDATE OF x SKIP LOCKED) AS due"
        " WHERE r.message_seq = due.message_seq AND r.recipient_id = due.recipient_id",
        list(seqs),
        list(recipient_ids),
        at,
    )
    return int(status.split()[-1])


# -- the redelivery sweeper -------------------------------------------------------------------


async def claim_untold_messages(db: Db, before: datetime, limit: int) -> list[AppMessage]:
    """Inside the sweeper's transaction: lock up to `limit` of the oldest messages accepted
    before `before` and not told, skipping those another replica holds; return them whole.
    The caller tells them, marks them (`mark_messages_told`) and commits."""
    records = await db.fetch(
        f"SELECT {_MESSAGE_COLUMNS} FROM messaging.messages m"
        " WHERE m.told_at IS NULL AND m.sent_at < $1"
        " ORDER BY m.sent_at LIMIT $2"
        " FOR NO KEY UPDATE OF m SKIP LOCKED",
        before,
        limit,
    )
    return [AppMessage(r["application_key"], _stored(r)) for r in records]


async def claim_untold_receipts(
    db: Db, before: datetime, limit: int, read: bool
) -> list[ReceiptRow]:
    """Inside the sweeper's transaction: lock up to `limit` recipient rows delivered (read,
    when `read`) before `before` whose receipt was not told, skipping those another replica
    holds; return them. The caller tells the senders, marks them and commits."""
    at, told = ("read_at", "read_told_at") if read else ("delivered_at", "delivered_told_at")
    records = await db.fetch(
        f"SELECT r.application_key, r.message_seq, m.message_id, m.sender_id, r.recipient_id,"
        f" r.{at} AS at"
        " FROM messaging.recipients r JOIN messaging.messages m ON m.seq = r.message_seq"
        f" WHERE r.{at} IS NOT NULL AND r.{told} IS NULL AND r.{at} < $1"
        f" ORDER BY r.{at} LIMIT $2"
        " FOR NO KEY UPDATE OF r SKIP LOCKED",
        before,
        limit,
    )
    return [
        ReceiptRow(
            r["application_key"],
            r["message_seq"],
            r["message_id"],
            r["sender_id"],
            r["recipient_id"],
            r["at"],
        )
        for r in records
    ]


async def claim_undelivered(
    db: Db, now: datetime, told_before: datetime, oldest: datetime, limit: int
) -> list[Undelivered]:
    """Take up to `limit` recipient rows not delivered, of messages accepted at or after
    `oldest` and told before `told_before`, not taken since `told_before` (retold_at), and
    set their retold_at to `now`; rows another replica holds are skipped. One statement:
    two replicas never take the same row in one round, and a row comes back only after
    `now - told_before` seconds, and after as long again as it has waited since it was
    first told: re-tells back off (after, 2x, 4x, ...), so a backlog of unacknowledged
    messages under overload does not feed itself."""
    records = await db.fetch(
        "WITH due AS ("
        "  SELECT r.message_seq, r.recipient_id"
        "  FROM messaging.recipients r JOIN messaging.messages m ON m.seq = r.message_seq"
        "  WHERE r.delivered_at IS NULL"
        "   AND r.message_seq >= coalesce((SELECT f.seq FROM messaging.messages f"
        "    WHERE f.sent_at >= $3 ORDER BY f.sent_at LIMIT 1), 9223372036854775807)"
        "   AND m.sent_at >= $3 AND m.told_at < $2"
        "   AND (r.retold_at IS NULL OR (r.retold_at < $2"
        "    AND $1 - r.retold_at >= r.retold_at - m.told_at))"
        "  ORDER BY r.message_seq, r.recipient_id LIMIT $4"
        "  FOR NO KEY UPDATE OF r SKIP LOCKED"
        " )"
        " UPDATE messaging.recipients r SET retold_at = $1 FROM due"
        " WHERE r.message_seq = due.message_seq AND r.recipient_id = due.recipient_id"
        " RETURNING r.application_key, r.message_seq, r.recipient_id",
        now,
        told_before,
        oldest,
        limit,
    )
    return [Undelivered(r["application_key"], r["message_seq"], r["recipient_id"]) for r in records]


# -- retention -----------------------------------------------------------------------------


async def delete_messages_before(db: Db, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` of the oldest messages accepted before the cutoff, with their
    recipient and acknowledgement rows (cascade); return how many messages went. Rows
    another replica's purge holds are skipped, not waited for."""
    status: str = await db.execute(
        "WITH doomed AS ("
        "  SELECT seq FROM messaging.messages WHERE sent_at < $1"
        "  ORDER BY sent_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        " )"
        " DELETE FROM messaging.messages m USING doomed WHERE m.seq = doomed.seq",
        cutoff,
        limit,
    )
    return int(status.split()[-1])
