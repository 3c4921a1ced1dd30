"""Operator actions on call credits: top-ups, statements and the rate table (used by the
admin CLI and by tests). Amounts are micro-units (see `credits`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from parley_auth import credits_store as cstore
from parley_auth import store
from parley_auth.accounts import AdminError
from parley_auth.keys import to_datetime
from parley_protocol.clock import Clock

DEFAULT_CURRENCY = "USD"


@dataclass(frozen=True)
class TopUp:
    entry: cstore.LedgerEntry
    currency: str


@dataclass(frozen=True)
class Statement:
    account: uuid.UUID
    balance: int
    currency: str
    held: int  # by calls under way (open reservations)
    entries: list[cstore.LedgerEntry]  # newest first

    @property
    def available(self) -> int:
        return self.balance - self.held


async def resolve_account(db: Any, account_or_app: uuid.UUID) -> uuid.UUID:
    """The account with this id, or the account of the application with this key."""
    if await store.get_account(db, account_or_app) is not None:
        return account_or_app
    app = await store.get_application_by_key(db, str(account_or_app))
    if app is None:
        raise AdminError(f"no account or application has the id {account_or_app}")
    return app.account_id


async def top_up(db: Any, account: uuid.UUID, amount: int, clock: Clock) -> TopUp:
    """Add `amount` (> 0) to the account's balance, with its ledger entry."""
    if amount <= 0:
        raise AdminError("a top-up adds more than 0")
    async with db.acquire() as conn, conn.transaction():
        credit = await cstore.lock_credit_account(conn, account)
        balance = await cstore.add_to_balance(conn, account, amount)
        entry = await cstore.insert_ledger_entry(
            conn, account, to_datetime(clock.time()), "topup", amount, balance
        )
    return TopUp(entry, credit.currency)


async def statement(db: Any, account: uuid.UUID, limit: int) -> Statement:
    """The balance, what calls under way hold of it, and the last `limit` ledger entries."""
    async with db.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        credit = await cstore.get_credit_account(conn, account)
        held = await cstore.held_by_open_reservations(conn, account)
        entries = await cstore.last_ledger_entries(conn, account, limit)
    if credit is None:
        return Statement(account, 0, DEFAULT_CURRENCY, held, entries)
    return Statement(account, credit.balance, credit.currency, held, entries)


async def set_rate(
    db: Any, prefix: str, rate_per_minute: int, description: str | None, clock: Clock
) -> cstore.Rate:
    if rate_per_minute < 0:
        raise AdminError("a rate is 0 or more")
    return await cstore.upsert_rate(
        db, prefix, rate_per_minute, description, to_datetime(clock.time())
    )


async def list_rates(db: Any) -> list[cstore.Rate]:
    return await cstore.list_rates(db)
