"""Phone numbers the trunk delivers calls to, each mapped to the application user a call
from a phone to it rings: the operator's commands (parley-admin numbers-*) and the lookup
the sip service asks for (parley.auth.number_lookup). All SQL of the table is here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from parley_auth.keys import to_datetime
from parley_protocol.clock import Clock
from parley_protocol.errors import ErrorCode, ParleyError


@dataclass(frozen=True)
class PhoneNumber:
    number: str
    application_key: str
    user_id: str
    updated_at: datetime


def _number(row: Any) -> PhoneNumber:
    return PhoneNumber(row["number"], row["application_key"], row["user_id"], row["updated_at"])


async def lookup(db: Any, number: str) -> PhoneNumber | None:
    row = await db.fetchrow(
        "SELECT number, application_key, user_id, updated_at FROM auth.phone_numbers"
        " WHERE number = $1",
        number,
    )
    return None if row is None else _number(row)


async def assign(
    db: Any, number: str, application_key: str, user_id: str, clock: Clock
) -> PhoneNumber:
    """Map `number` to a user of an application (replacing what it was mapped to)."""
    found = await db.fetchval("SELECT 1 FROM auth.applications WHERE key = $1", application_key)
    if found is None:
        raise ParleyError(
            ErrorCode.ERROR_CODE_UNKNOWN_APPLICATION,
            f"no application has the key {application_key}",
            "application_key",
        )
    row = await db.fetchrow(
        "INSERT INTO auth.phone_numbers (number, application_key, user_id, updated_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (number) DO UPDATE SET"
        " application_key = EXCLUDED.application_key, user_id = EXCLUDED.user_id,"
        " updated_at = EXCLUDED.updated_at"
        " RETURNING number, application_key, user_id, updated_at",
        number,
        application_key,
        user_id,
        to_datetime(clock.time()),
    )
    return _number(row)


async def remove(db: Any, number: str) -> bool:
    deleted = await db.fetchval(
        "DELETE FROM auth.phone_numbers WHERE number = $1 RETURNING 1", number
    )
    return deleted is not None


async def list_all(db: Any) -> list[PhoneNumber]:
    rows = await db.fetch(
        "SELECT number, application_key, user_id, updated_at FROM auth.phone_numbers"
        " ORDER BY number"
    )
    return [_number(row) for row in rows]
