"""The batched writes: sends, acknowledgements and reads, a whole batch of requests in one
commit, on disk before it returns (parley_service.batches feeds them).

Each write takes the batch and gives one result per request, in order:

- `write_messages`: inserts the new messages and their recipients (one statement, its own
  commit); a message id already stored in the application (a retried send, or the same id
  twice in the batch) is not written again, and its result says who sent it and when it
  was accepted.
- `write_acks`: records per (message, device instance) that the device has the message; the
  first acknowledgement of a recipient makes the message delivered to that recipient.
- `write_reads`: marks messages read by their recipient (a read message is delivered too).
- `write_told`: marks messages and receipts told (their events were taken); each statement
  commits by itself: a mark lost only makes the sweeper tell it again.

Acknowledgements and reads count only messages addressed to the request's user within the
retention time; other ids are left out. Each delivered or read mark is given to exactly
one request of the batch, whose handler tells the sender.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import asyncpg

from parley_messaging import store
from parley_messaging.records import to_datetime, to_ms
from parley_messaging.store import Addressed, Db, MessageKey, NewMessageRow
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.logs import get_logger

log = get_logger("parley.messaging.commits")

T = TypeVar("T")
R = TypeVar("R")

# A batched write: the batch's requests in, one result per request out, in order.
Write = Callable[[Db, Sequence[T]], Awaitable[Sequence[R]]]

# A batch that lost a deadlock (or a serialization conflict) to another replica's batch is
# run again this many times in all.
ATTEMPTS = 3


# -- sends --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewMessage:
    application_key: str
    message_id: uuid.UUID
    sender_id: str
    recipient_ids: tuple[str, ...]
    text: str
    headers: dict[str, str]
    sent_at_ms: int


@dataclass(frozen=True)
class Stored:
    """What a send came to: `created` (this request stored it) or the message that was
    there already, with its sender, the time it was accepted and whether it was told."""

    created: bool
    sender_id: str
    sent_at_ms: int
    seq: int
    told: bool = False


async def write_messages(conn: Db, batch: Sequence[NewMessage]) -> list[Stored | ParleyError]:
    first: dict[MessageKey, int] = {}
    rows: list[NewMessageRow] = []
    for index, message in enumerate(batch):
        key = MessageKey(message.application_key, message.message_id)
        if key in first:
            continue
        first[key] = index
        rows.append(
            NewMessageRow(
                application_key=message.application_key,
                message_id=message.message_id,
                sender_id=message.sender_id,
                recipient_ids=message.recipient_ids,
                text=message.text,
                headers=message.headers,
                sent_at=to_datetime(message.sent_at_ms),
            )
        )
    inserted = await store.insert_messages(conn, rows)
    existing = [key for key in first if key not in inserted]
    heads = await store.find_messages(conn, existing) if existing else {}

    results: list[Stored | ParleyError] = []
    for index, message in enumerate(batch):
        key = MessageKey(message.application_key, message.message_id)
        if key in inserted:
            original = batch[first[key]]
            results.append(
                Stored(first[key] == index, original.sender_id, original.sent_at_ms, inserted[key])
            )
        elif key in heads:
            head = heads[key]
            results.append(Stored(False, head.sender_id, to_ms(head.sent_at), head.seq, head.told))
        else:  # there when inserted, gone when looked up: purged in between
            results.append(
                ParleyError(
                    ErrorCode.ERROR_CODE_UNAVAILABLE,
                    "the message changed while it was stored; retry",
                    "message_id",
                )
            )
    return results


# -- acknowledgements and reads ------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptRequest:
    """A device's AckMessages or MarkRead: its user, its instance and the message ids."""

    application_key: str
    user_id: str
    instance_id: uuid.UUID
    message_ids: tuple[uuid.UUID, ...]
    at_ms: int
    # Messages accepted before this are past the retention time.
    cutoff_ms: int


@dataclass(frozen=True)
class Receipt:
    """A message became delivered to (or read by) `user_id`: the sender is to hear it."""

    seq: int
    message_id: uuid.UUID
    sender_id: str
    user_id: str
    at_ms: int


@dataclass(frozen=True)
class ReceiptOutcome:
    # The request's ids that are messages to its user (acknowledged or read, now or before).
    count: int
    delivered: list[Receipt] = field(default_factory=list)
    read: list[Receipt] = field(default_factory=list)


async def write_acks(conn: Db, batch: Sequence[ReceiptRequest]) -> list[ReceiptOutcome]:
    return await _write_receipts(conn, batch, read=False)


async def write_reads(conn: Db, batch: Sequence[ReceiptRequest]) -> list[ReceiptOutcome]:
    return await _write_receipts(conn, batch, read=True)


async def _write_receipts(
    conn: Db, batch: Sequence[ReceiptRequest], read: bool
) -> list[ReceiptOutcome]:
    items: list[int] = []
    apps: list[str] = []
    users: list[str] = []
    ids: list[uuid.UUID] = []
    cutoffs: list[datetime] = []
    for index, request in enumerate(batch):
        for message_id in request.message_ids:
            items.append(index)
            apps.append(request.application_key)
            users.append(request.user_id)
            ids.append(message_id)
            cutoffs.append(to_datetime(request.cutoff_ms))
    found = await store.find_addressed(conn, items, apps, users, ids, cutoffs) if items else []
    counts = [0] * len(batch)
    # Each (message, recipient) to the first request of the batch that names it.
    claims: dict[tuple[int, str], Addressed] = {}
    # Each (message, instance) acknowledged at the time of the first request naming it.
    acks: dict[tuple[int, uuid.UUID], int] = {}
    for row in found:
        request = batch[row.item]
        counts[row.item] += 1
        claims.setdefault((row.seq, request.user_id), row)
        acks.setdefault((row.seq, request.instance_id), request.at_ms)
    delivered: list[list[Receipt]] = [[] for _ in batch]
    marked_read: list[list[Receipt]] = [[] for _ in batch]
    if claims:
        keys = sorted(claims)
        seqs = [seq for seq, _ in keys]
        recipients = [user for _, user in keys]
        ats = [to_datetime(batch[claims[key].item].at_ms) for key in keys]
        if not read:
            ack_keys = sorted(acks)
            await store.insert_device_acks(
                conn,
                [seq for seq, _ in ack_keys],
                [instance for _, instance in ack_keys],
                [to_datetime(acks[key]) for key in ack_keys],
            )
        for mark in await store.mark_delivered(conn, seqs, recipients, ats):
            row = claims[(mark.seq, mark.recipient_id)]
            delivered[row.item].append(_receipt(row, mark))
        if read:
            for mark in await store.mark_read(conn, seqs, recipients, ats):
                row = claims[(mark.seq, mark.recipient_id)]
                marked_read[row.item].append(_receipt(row, mark))
    return [ReceiptOutcome(counts[i], delivered[i], marked_read[i]) for i in range(len(batch))]


def _receipt(row: Addressed, mark: store.Marked) -> Receipt:
    return Receipt(row.seq, row.message_id, row.sender_id, mark.recipient_id, to_ms(mark.at))


# -- told marks -------------------------------------------------------------------------------

MESSAGE = "message"
DELIVERED = "delivered"
READ = "read"


@dataclass(frozen=True)
class Told:
    """The events of a message (MessageIncoming and MessageSent), or of one recipient's
    delivered or read receipt (`recipient_id`), were taken by the device events."""

    kind: str  # MESSAGE, DELIVERED or READ
    seq: int
    recipient_id: str = ""


@dataclass(frozen=True)
class ToldMarks:
    """One request's told marks, at `at_ms`."""

    marks: tuple[Told, ...]
    at_ms: int


async def write_told(conn: Db, batch: Sequence[ToldMarks]) -> list[None]:
    """Set told_at, delivered_told_at and read_told_at of the batch's marks (those set
    already stay as they are)."""
    if not batch:
        return []
    at = to_datetime(max(item.at_ms for item in batch))
    marks = sorted({m for item in batch for m in item.marks}, key=lambda m: (m.seq, m.recipient_id))
    messages = [m.seq for m in marks if m.kind == MESSAGE]
    if messages:
        await store.mark_messages_told(conn, messages, at)
    for kind in (DELIVERED, READ):
        rows = [m for m in marks if m.kind == kind]
        if rows:
            await store.mark_receipts_told(
                conn, [m.seq for m in rows], [m.recipient_id for m in rows], at, kind == READ
            )
    return [None] * len(batch)


# -- transactions ---------------------------------------------------------------------------


def flush_by(
    pool: asyncpg.Pool,
    write: Write[T, R],
    timeout_seconds: float,
    kind: str,
    *,
    transaction: bool,
) -> Callable[[Sequence[T]], Awaitable[Sequence[R]]]:
    """A flush for a Batcher: `write` the batch within `timeout_seconds` (TimeoutError:
    UNAVAILABLE to the requests; the outcome of a commit cut off is unknown, and a retry is
    answered from what was stored). With `transaction`, all its statements commit together;
    without, each statement commits by itself (for writes of one statement, or of
    statements that stand alone), which spares the round trips of BEGIN and COMMIT. Either
    way a commit returns once it is on disk (the pool's sessions commit synchronously). A
    deadlock or serialization failure against another replica runs the batch again."""

    async def flush(batch: Sequence[T]) -> Sequence[R]:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with asyncio.timeout(timeout_seconds), pool.acquire() as conn:
                    if not transaction:
                        return await write(conn, batch)
                    async with conn.transaction():
                        return await write(conn, batch)
            except asyncpg.TransactionRollbackError as exc:
                if attempt == ATTEMPTS:
                    raise
                log.info("commit_retried", kind=kind, attempt=attempt, error=repr(exc))
        raise AssertionError("unreachable")

    return flush
