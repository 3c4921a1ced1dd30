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


# -- transactions ---------------------------------------------------------------------------


async def require_synchronous_commit(db: Db) -> None:
    """Inside a transaction: its COMMIT returns only once the WAL is flushed to disk,
    whatever the server's or the role's default (what is acknowledged survives a crash)."""
    await db.execute("SET LOCAL synchronous_commit TO on")


# -- sends --------------------------------------------------------------------------------


async def insert_messages(db: Db, rows: Sequence[NewMessageRow]) -> dict[MessageKey, int]:
    """Insert the messages whose (application, message id) is new, in the given order (their
    sequence follows it); return the sequence of each one inserted. Existing ids are left
    alone (a retried send): look them up with `find_messages`."""
    records = await db.fetch(
        "INSERT INTO messaging.messages"
        " (application_key, message_id, sender_id, text, headers, sent_at)"
        " SELECT application_key, message_id, sender_id, text, headers, sent_at"
        " FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[],"
        "  $6::timestamptz[])"
        "  WITH ORDINALITY AS n(application_key, message_id, sender_id, text, headers, sent_at,"
        "  ord)"
        " ORDER BY ord"
        " ON CONFLICT (application_key, message_id) DO NOTHING"
        " RETURNING application_key, message_id, seq",
        [r.application_key for r in rows],
        [r.message_id for r in rows],
        [r.sender_id for r in rows],
        [r.text for r in rows],
        [json.dumps(r.headers, separators=(",", ":")) for r in rows],
        [r.sent_at for r in rows],
    )
    return {MessageKey(r["application_key"], r["message_id"]): r["seq"] for r in records}


async def insert_recipients(
    db: Db,
    seqs: Sequence[int],
    recipient_ids: Sequence[str],
    positions: Sequence[int],
    application_keys: Sequence[str],
) -> None:
    """One row per (message, recipient) of new messages."""
    await db.execute(
        "INSERT INTO messaging.recipients (message_seq, recipient_id, position, application_key)"
        " SELECT * FROM unnest($1::bigint[], $2::text[], $3::smallint[], $4::text[])",
        seqs,
        recipient_ids,
        positions,
        application_keys,
    )


async def find_messages(db: Db, keys: Sequence[MessageKey]) -> dict[MessageKey, MessageHead]:
    """The stored messages of these (application, message id) keys."""
    records = await db.fetch(
        "SELECT m.application_key, m.message_id, m.sender_id, m.sent_at"
        " FROM unnest($1::text[], $2::uuid[]) AS k(application_key, message_id)"
        " JOIN messaging.messages m"
        "  ON m.application_key = k.application_key AND m.message_id = k.message_id",
        [k.application_key for k in keys],
        [k.message_id for k in keys],
    )
    return {
        MessageKey(r["application_key"], r["message_id"]): MessageHead(
            r["application_key"], r["message_id"], r["sender_id"], r["sent_at"]
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
        "SELECT m.seq, m.message_id, m.sender_id, m.text, m.headers, m.sent_at,"
        " ARRAY(SELECT x.recipient_id FROM messaging.recipients x"
        "  WHERE x.message_seq = m.seq ORDER BY x.position) AS recipient_ids"
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
    return [
        StoredMessage(
            seq=r["seq"],
            message_id=r["message_id"],
            sender_id=r["sender_id"],
            recipient_ids=list(r["recipient_ids"]),
            text=r["text"],
            headers=json.loads(r["headers"]),
            sent_at=r["sent_at"],
        )
        for r in records
    ]


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
