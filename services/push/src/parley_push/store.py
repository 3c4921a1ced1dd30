"""All SQL of the `push` schema, one function per query.

Every function takes an asyncpg pool or connection (`db`). Times are passed in from the
injected clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Both asyncpg.Pool and asyncpg.Connection (asyncpg ships no type hints).
Db = Any


@dataclass(frozen=True)
class DeviceRow:
    user_id: str
    instance_id: str
    push_data: bytes | None
    provider: int | None
    token: str | None


@dataclass(frozen=True)
class CredentialsRow:
    application_key: str
    provider: int
    sealed: bytes
    updated_at: datetime


async def set_push_data(
    db: Db, app: str, user_id: str, instance_id: str, push_data: bytes | None, now: datetime
) -> None:
    await db.execute(
        """
        INSERT INTO push.devices (application_key, user_id, instance_id, push_data, updated_at)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (application_key, user_id, instance_id)
        DO UPDATE SET push_data = EXCLUDED.push_data, updated_at = EXCLUDED.updated_at
        """,
        app,
        user_id,
        instance_id,
        push_data,
        now,
    )


async def set_managed(
    db: Db,
    app: str,
    user_id: str,
    instance_id: str,
    provider: int | None,
    token: str | None,
    now: datetime,
) -> None:
    await db.execute(
        """
        INSERT INTO push.devices (application_key, user_id, instance_id, provider, token, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (application_key, user_id, instance_id)
        DO UPDATE SET provider = EXCLUDED.provider, token = EXCLUDED.token,
                      updated_at = EXCLUDED.updated_at
        """,
        app,
        user_id,
        instance_id,
        provider,
        token,
        now,
    )


async def device(db: Db, app: str, user_id: str, instance_id: str) -> DeviceRow | None:
    row = await db.fetchrow(
        """
        SELECT user_id, instance_id, push_data, provider, token FROM push.devices
        WHERE application_key = $1 AND user_id = $2 AND instance_id = $3
        """,
        app,
        user_id,
        instance_id,
    )
    return None if row is None else DeviceRow(*row)


@dataclass(frozen=True)
class Recipients:
    """The users of one notification, in its application."""

    application_key: str
    user_ids: tuple[str, ...]


async def devices_of(db: Db, batch: Sequence[Recipients]) -> list[list[DeviceRow]]:
    """For each notification of the batch, the devices of its users that registered
    something (user by user in the notification's order, each user's by instance id): one
    query for the whole batch."""
    wanted: dict[tuple[str, str], None] = {}
    for entry in batch:
        for user in entry.user_ids:
            wanted[(entry.application_key, user)] = None
    rows = await db.fetch(
        """
        SELECT d.application_key, d.user_id, d.instance_id, d.push_data, d.provider, d.token
        FROM unnest($1::text[], $2::text[]) AS w(application_key, user_id)
        JOIN push.devices d ON d.application_key = w.application_key AND d.user_id = w.user_id
        WHERE d.push_data IS NOT NULL OR d.token IS NOT NULL
        ORDER BY d.application_key, d.user_id, d.instance_id
        """,
        [app for app, _ in wanted],
        [user for _, user in wanted],
    )
    found: dict[tuple[str, str], list[DeviceRow]] = {}
    for app, *device in rows:
        found.setdefault((app, device[0]), []).append(DeviceRow(*device))
    return [
        [row for user in entry.user_ids for row in found.get((entry.application_key, user), ())]
        for entry in batch
    ]


async def forget_token(
    db: Db, app: str, user_id: str, instance_id: str, provider: int, token: str, now: datetime
) -> bool:
    """A provider said the token is dead: forget it, unless the device registered another
    since. True when it was forgotten."""
    status: str = await db.execute(
        """
        UPDATE push.devices SET provider = NULL, token = NULL, updated_at = $6
        WHERE application_key = $1 AND user_id = $2 AND instance_id = $3
          AND provider = $4 AND token = $5
        """,
        app,
        user_id,
        instance_id,
        provider,
        token,
        now,
    )
    return status.endswith(" 1")


async def set_credentials(db: Db, app: str, provider: int, sealed: bytes, now: datetime) -> None:
    await db.execute(
        """
        INSERT INTO push.credentials (application_key, provider, sealed, updated_at)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (application_key, provider)
        DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = EXCLUDED.updated_at
        """,
        app,
        provider,
        sealed,
        now,
    )


async def credentials(db: Db, app: str, provider: int) -> CredentialsRow | None:
    row = await db.fetchrow(
        """
        SELECT application_key, provider, sealed, updated_at FROM push.credentials
        WHERE application_key = $1 AND provider = $2
        """,
        app,
        provider,
    )
    return None if row is None else CredentialsRow(*row)


async def credentials_of(db: Db, app: str | None) -> list[CredentialsRow]:
    rows = await db.fetch(
        """
        SELECT application_key, provider, sealed, updated_at FROM push.credentials
        WHERE $1::text IS NULL OR application_key = $1
        ORDER BY application_key, provider
        """,
        app,
    )
    return [CredentialsRow(*row) for row in rows]


async def remove_credentials(db: Db, app: str, provider: int) -> bool:
    status: str = await db.execute(
        "DELETE FROM push.credentials WHERE application_key = $1 AND provider = $2", app, provider
    )
    return status.endswith(" 1")
