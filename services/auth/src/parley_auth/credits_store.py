"""All SQL of call credits in the `auth` schema, one function per query (like `store`).

Every function takes an asyncpg pool or connection (`db`); those that lock rows must run
on a connection inside the caller's transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Db = Any


@dataclass(frozen=True)
class CreditAccount:
    account: uuid.UUID
    balance: int
    currency: str


@dataclass(frozen=True)
class Rate:
    prefix: str
    rate_per_minute: int
    description: str
    updated_at: datetime


@dataclass(frozen=True)
class Reservation:
    application_key: str
    call_id: str
    account: uuid.UUID
    number: str
    rate: int
    reserved: int
    max_seconds: int
    known_ms: int
    created_at: datetime
    expires_at: datetime
    settled_at: datetime | None
    settled_by: str | None
    amount: int | None
    duration_seconds: int | None
    balance_after: int | None


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    account: uuid.UUID
    at: datetime
    kind: str
    amount: int
    balance_after: int
    application_key: str | None
    call_id: str | None
    number: str | None
    duration_seconds: int | None
    rate_per_minute: int | None


_RESERVATION_COLUMNS = (
    "application_key, call_id, account, number, rate, reserved, max_seconds, known_ms,"
    " created_at, expires_at, settled_at, settled_by, amount, duration_seconds, balance_after"
)
_LEDGER_COLUMNS = (
    "id, account, at, kind, amount, balance_after, application_key, call_id, number,"
    " duration_seconds, rate_per_minute"
)


def _reservation(row: Any) -> Reservation:
    return Reservation(**{name: row[name] for name in Reservation.__dataclass_fields__})


def _ledger_entry(row: Any) -> LedgerEntry:
    return LedgerEntry(**{name: row[name] for name in LedgerEntry.__dataclass_fields__})


# Balances -------------------------------------------------------------------------------


async def lock_credit_account(db: Db, account: uuid.UUID) -> CreditAccount:
    """The account's balance row (made at 0 when missing), locked until the transaction ends:
    whoever changes the balance or holds credit from it goes one at a time."""
    await db.execute(
        "INSERT INTO auth.credit_accounts (account) VALUES ($1) ON CONFLICT DO NOTHING", account
    )
    row = await db.fetchrow(
        "SELECT account, balance, currency FROM auth.credit_accounts WHERE account = $1 FOR UPDATE",
        account,
    )
    return CreditAccount(row["account"], row["balance"], row["currency"])


async def get_credit_account(db: Db, account: uuid.UUID) -> CreditAccount | None:
    row = await db.fetchrow(
        "SELECT account, balance, currency FROM auth.credit_accounts WHERE account = $1", account
    )
    return None if row is None else CreditAccount(row["account"], row["balance"], row["currency"])


async def add_to_balance(db: Db, account: uuid.UUID, amount: int) -> int:
    """Add `amount` (signed) to the balance; the new balance."""
    balance: int = await db.fetchval(
        "UPDATE auth.credit_accounts SET balance = balance + $2 WHERE account = $1"
        " RETURNING balance",
        account,
        amount,
    )
    return balance


async def held_by_open_reservations(db: Db, account: uuid.UUID) -> int:
    """Credit held for the account's calls not settled yet."""
    held: int = await db.fetchval(
        "SELECT coalesce(sum(reserved), 0)::bigint FROM auth.credit_reservations"
        " WHERE account = $1 AND settled_at IS NULL",
        account,
    )
    return held


# Rates ----------------------------------------------------------------------------------


async def rates_matching(db: Db, prefixes: list[str]) -> dict[str, int]:
    """The rates of those of `prefixes` that are in the table (prefix -> rate per minute)."""
    rows = await db.fetch(
        "SELECT prefix, rate_per_minute FROM auth.call_rates WHERE prefix = ANY($1::text[])",
        prefixes,
    )
    return {row["prefix"]: row["rate_per_minute"] for row in rows}


async def upsert_rate(
    db: Db, prefix: str, rate_per_minute: int, description: str | None, at: datetime
) -> Rate:
    """Set the rate of a prefix; a None description keeps the one it had."""
    row = await db.fetchrow(
        "INSERT INTO auth.call_rates AS r (prefix, rate_per_minute, description, updated_at)"
        " VALUES ($1, $2, coalesce($3, ''), $4)"
        " ON CONFLICT (prefix) DO UPDATE SET rate_per_minute = EXCLUDED.rate_per_minute,"
        " description = coalesce($3, r.description), updated_at = EXCLUDED.updated_at"
        " RETURNING prefix, rate_per_minute, description, updated_at",
        prefix,
        rate_per_minute,
        description,
        at,
    )
    return Rate(row["prefix"], row["rate_per_minute"], row["description"], row["updated_at"])


async def list_rates(db: Db) -> list[Rate]:
    rows = await db.fetch(
        "SELECT prefix, rate_per_minute, description, updated_at FROM auth.call_rates"
        " ORDER BY prefix"
    )
    return [
        Rate(row["prefix"], row["rate_per_minute"], row["description"], row["updated_at"])
        for row in rows
    ]


# Reservations ---------------------------------------------------------------------------


async def get_reservation(
    db: Db, application_key: str, call_id: str, *, lock: bool = False
) -> Reservation | None:
    row = await db.fetchrow(
        f"SELECT {_RESERVATION_COLUMNS} FROM auth.credit_reservations"
        " WHERE application_key = $1 AND call_id = $2" + (" FOR UPDATE" if lock else ""),
        application_key,
        call_id,
    )
    return None if row is None else _reservation(row)


async def insert_reservation(
    db: Db,
    application_key: str,
    call_id: str,
    account: uuid.UUID,
    number: str,
    rate: int,
    reserved: int,
    max_seconds: int,
    created_at: datetime,
    expires_at: datetime,
) -> Reservation:
    row = await db.fetchrow(
        "INSERT INTO auth.credit_reservations (application_key, call_id, account, number,"
        " rate, reserved, max_seconds, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        f" RETURNING {_RESERVATION_COLUMNS}",
        application_key,
        call_id,
        account,
        number,
        rate,
        reserved,
        max_seconds,
        created_at,
        expires_at,
    )
    return _reservation(row)


async def raise_known_ms(
    db: Db,
    application_key: str,
    call_id: str,
    duration_ms: int,
    lease_end: datetime,
    grace_seconds: int,
) -> bool:
    """The call lasted at least `duration_ms` (known_ms only grows) and its reservation is
    renewed until `lease_end` (never past what it pays for plus the grace); False: no
    reservation."""
    row = await db.fetchrow(
        "UPDATE auth.credit_reservations SET known_ms = greatest(known_ms, $3),"
        " expires_at = least(created_at + make_interval(secs => max_seconds + $5), $4)"
        " WHERE application_key = $1 AND call_id = $2 RETURNING 1",
        application_key,
        call_id,
        duration_ms,
        lease_end,
        grace_seconds,
    )
    return row is not None


async def lock_one_expired_reservation(db: Db, now: datetime) -> Reservation | None:
    """An open reservation past its expiry, locked; rows other replicas hold are skipped."""
    row = await db.fetchrow(
        f"SELECT {_RESERVATION_COLUMNS} FROM auth.credit_reservations"
        " WHERE settled_at IS NULL AND expires_at <= $1"
        " ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        now,
    )
    return None if row is None else _reservation(row)


async def mark_settled(
    db: Db,
    application_key: str,
    call_id: str,
    at: datetime,
    by: str,
    amount: int,
    duration_seconds: int,
    balance_after: int,
) -> None:
    await db.execute(
        "UPDATE auth.credit_reservations SET settled_at = $3, settled_by = $4, amount = $5,"
        " duration_seconds = $6, balance_after = $7"
        " WHERE application_key = $1 AND call_id = $2",
        application_key,
        call_id,
        at,
        by,
        amount,
        duration_seconds,
        balance_after,
    )


# Ledger ---------------------------------------------------------------------------------


async def insert_ledger_entry(
    db: Db,
    account: uuid.UUID,
    at: datetime,
    kind: str,
    amount: int,
    balance_after: int,
    *,
    application_key: str | None = None,
    call_id: str | None = None,
    number: str | None = None,
    duration_seconds: int | None = None,
    rate_per_minute: int | None = None,
) -> LedgerEntry:
    row = await db.fetchrow(
        "INSERT INTO auth.credit_ledger (account, at, kind, amount, balance_after,"
        " application_key, call_id, number, duration_seconds, rate_per_minute)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        f" RETURNING {_LEDGER_COLUMNS}",
        account,
        at,
        kind,
        amount,
        balance_after,
        application_key,
        call_id,
        number,
        duration_seconds,
        rate_per_minute,
    )
    return _ledger_entry(row)


async def last_ledger_entries(db: Db, account: uuid.UUID, limit: int) -> list[LedgerEntry]:
    """The account's last `limit` entries, newest first."""
    rows = await db.fetch(
        f"SELECT {_LEDGER_COLUMNS} FROM auth.credit_ledger WHERE account = $1"
        " ORDER BY id DESC LIMIT $2",
        account,
        limit,
    )
    return [_ledger_entry(row) for row in rows]
