"""All SQL of the `auth` schema, one function per query.

Every function takes an asyncpg pool or connection (`db`), so callers choose whether a
query runs alone or inside their transaction. Times are passed in from the injected clock.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Both asyncpg.Pool and asyncpg.Connection (asyncpg ships no type hints).
Db = Any

CHANGES_CHANNEL = "parley_auth_changes"
SIGNING_KEYS_CHANGED = "signing_keys"
APPLICATION_CHANGED_PREFIX = "application:"
_SIGNING_KEYS_LOCK = "parley.auth.signing_keys"


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Application:
    id: uuid.UUID
    account_id: uuid.UUID
    key: str
    name: str
    environment: str
    secret_encrypted: bytes
    created_at: datetime
    secret_rotated_at: datetime | None


@dataclass(frozen=True)
class DeviceInstance:
    id: uuid.UUID
    application_key: str
    user_id: str
    secret_hash: bytes
    scheme: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key_encrypted: bytes
    public_jwk: dict[str, str]
    created_at: datetime
    retired_at: datetime | None


_APPLICATION_COLUMNS = (
    "id, account_id, key, name, environment, secret_encrypted, created_at, secret_rotated_at"
)


def _application(row: Any) -> Application:
    return Application(
        id=row["id"],
        account_id=row["account_id"],
        key=row["key"],
        name=row["name"],
        environment=row["environment"],
        secret_encrypted=bytes(row["secret_encrypted"]),
        created_at=row["created_at"],
        secret_rotated_at=row["secret_rotated_at"],
    )


def _signing_key(row: Any) -> SigningKey:
    return SigningKey(
        kid=row["kid"],
        private_key_encrypted=bytes(row["private_key_encrypted"]),
        public_jwk=json.loads(row["public_jwk"]),
        created_at=row["created_at"],
        retired_at=row["retired_at"],
    )


# Accounts -------------------------------------------------------------------------------


async def insert_account(db: Db, account_id: uuid.UUID, name: str, created_at: datetime) -> None:
    await db.execute(
        "INSERT INTO auth.accounts (id, name, created_at) VALUES ($1, $2, $3)",
        account_id,
        name,
        created_at,
    )


async def get_account(db: Db, account_id: uuid.UUID) -> Account | None:
    row = await db.fetchrow(
        "SELECT id, name, created_at FROM auth.accounts WHERE id = $1", account_id
    )
    return None if row is None else Account(row["id"], row["name"], row["created_at"])


# Applications ---------------------------------------------------------------------------


async def insert_application(db: Db, app: Application) -> None:
    await db.execute(
        f"INSERT INTO auth.applications ({_APPLICATION_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        app.id,
        app.account_id,
        app.key,
        app.name,
        app.environment,
        app.secret_encrypted,
        app.created_at,
        app.secret_rotated_at,
    )


async def get_application_by_key(db: Db, key: str) -> Application | None:
    row = await db.fetchrow(
        f"SELECT {_APPLICATION_COLUMNS} FROM auth.applications WHERE key = $1", key
    )
    return None if row is None else _application(row)


async def list_applications(db: Db, account_id: uuid.UUID | None = None) -> list[Application]:
    rows = await db.fetch(
        f"SELECT {_APPLICATION_COLUMNS} FROM auth.applications"
        " WHERE $1::uuid IS NULL OR account_id = $1 ORDER BY created_at, key",
        account_id,
    )
    return [_application(row) for row in rows]


async def update_application_secret(
    db: Db, key: str, secret_encrypted: bytes, rotated_at: datetime
) -> bool:
    """Replace the sealed secret; False when there is no such application."""
    status: str = await db.execute(
        "UPDATE auth.applications SET secret_encrypted = $2, secret_rotated_at = $3 WHERE key = $1",
        key,
        secret_encrypted,
        rotated_at,
    )
    return status == "UPDATE 1"


# Registration sequences -----------------------------------------------------------------


def _insert_device_if(condition: str, scheme: str) -> str:
    """The tail of a registration statement: add the device ($1..$6) only if the CTE
    `condition` (the sequence accepted, the signature fresh) returned a row."""
    return (
        " INSERT INTO auth.device_instances"
        " (id, application_id, user_id, secret_hash, scheme, device_name, created_at,"
        " last_token_at)"
        f" SELECT $1::uuid, $2::uuid, $3::text, $4::bytea, '{scheme}', $5::text,"
        f" $6::timestamptz, $6::timestamptz FROM {condition}"
        " RETURNING id"
    )


async def insert_device_instance_at_sequence(
    db: Db,
    instance_id: uuid.UUID,
    application_id: uuid.UUID,
    user_id: str,
    secret_hash: bytes,
    device_name: str,
    created_at: datetime,
    sequence: int,
) -> bool:
    """Accept `sequence` for (application, user) and add the device, in one atomic statement.

    Nothing is written, and False returned, unless `sequence` is greater than the last one
    accepted. Two registrations racing with one sequence: the second waits on the first's
    row lock, then re-checks the WHERE against the updated row and fails it.
    """
    row = await db.fetchrow(
        "WITH accepted AS ("
        " INSERT INTO auth.user_sequences AS s (application_id, user_id, last_sequence,"
        " updated_at) VALUES ($2, $3, $7, $6)"
        " ON CONFLICT (application_id, user_id) DO UPDATE"
        " SET last_sequence = EXCLUDED.last_sequence, updated_at = EXCLUDED.updated_at"
        " WHERE s.last_sequence < EXCLUDED.last_sequence"
        " RETURNING 1)" + _insert_device_if("accepted", "application_server"),
        instance_id,
        application_id,
        user_id,
        secret_hash,
        device_name,
        created_at,
        sequence,
    )
    return row is not None


async def get_user_sequence(db: Db, application_id: uuid.UUID, user_id: str) -> int | None:
    value: int | None = await db.fetchval(
        "SELECT last_sequence FROM auth.user_sequences WHERE application_id = $1 AND user_id = $2",
        application_id,
        user_id,
    )
    return value


# Device instances -----------------------------------------------------------------------


async def insert_device_instance_once(
    db: Db,
    instance_id: uuid.UUID,
    application_id: uuid.UUID,
    user_id: str,
    secret_hash: bytes,
    device_name: str,
    created_at: datetime,
    signature_sha256: bytes,
    signature_expires_at: datetime,
) -> bool:
    """Record a self-signed registration's signature and add the device, atomically.

    False (nothing written) when that signature was used before: a replay.
    """
    row = await db.fetchrow(
        "WITH fresh AS ("
        " INSERT INTO auth.self_signed_uses (application_id, signature_sha256, expires_at)"
        " VALUES ($2, $7, $8) ON CONFLICT DO NOTHING RETURNING 1)"
        + _insert_device_if("fresh", "application_secret"),
        instance_id,
        application_id,
        user_id,
        secret_hash,
        device_name,
        created_at,
        signature_sha256,
        signature_expires_at,
    )
    return row is not None


async def purge_self_signed_uses(db: Db, before: datetime) -> int:
    """Forget signatures whose timestamps are out of the window anyway."""
    status: str = await db.execute(
        "DELETE FROM auth.self_signed_uses WHERE expires_at < $1", before
    )
    return int(status.rsplit(" ", 1)[-1])


async def get_device_instance(db: Db, instance_id: uuid.UUID) -> DeviceInstance | None:
    row = await db.fetchrow(
        "SELECT d.id, a.key AS application_key, d.user_id, d.secret_hash, d.scheme,"
        " d.created_at, d.revoked_at"
        " FROM auth.device_instances d JOIN auth.applications a ON a.id = d.application_id"
        " WHERE d.id = $1",
        instance_id,
    )
    if row is None:
        return None
    return DeviceInstance(
        id=row["id"],
        application_key=row["application_key"],
        user_id=row["user_id"],
        secret_hash=bytes(row["secret_hash"]),
        scheme=row["scheme"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


async def count_user_devices(db: Db, application_key: str, user_id: str) -> int:
    """Devices ever registered for (application, user), revoked ones included."""
    count: int = await db.fetchval(
        "SELECT count(*) FROM auth.device_instances d"
        " JOIN auth.applications a ON a.id = d.application_id"
        " WHERE a.key = $1 AND d.user_id = $2",
        application_key,
        user_id,
    )
    return count


async def touch_device_instance(db: Db, instance_id: uuid.UUID, at: datetime) -> None:
    await db.execute(
        "UPDATE auth.device_instances SET last_token_at = $2 WHERE id = $1", instance_id, at
    )


async def revoke_device_instance(db: Db, instance_id: uuid.UUID, at: datetime) -> bool:
    status: str = await db.execute(
        "UPDATE auth.device_instances SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        instance_id,
        at,
    )
    return status == "UPDATE 1"


# Signing keys ---------------------------------------------------------------------------


async def lock_signing_keys(db: Db) -> None:
    """Serialise key creation and rotation across replicas (held until the transaction ends)."""
    await db.execute("SELECT pg_advisory_xact_lock(hashtext($1))", _SIGNING_KEYS_LOCK)


async def get_active_signing_key(db: Db) -> SigningKey | None:
    row = await db.fetchrow(
        "SELECT kid, private_key_encrypted, public_jwk::text AS public_jwk, created_at, retired_at"
        " FROM auth.signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1"
    )
    return None if row is None else _signing_key(row)


async def insert_signing_key(db: Db, key: SigningKey) -> None:
    await db.execute(
        "INSERT INTO auth.signing_keys (kid, private_key_encrypted, public_jwk, created_at,"
        " retired_at) VALUES ($1, $2, $3::jsonb, $4, $5)",
        key.kid,
        key.private_key_encrypted,
        json.dumps(key.public_jwk),
        key.created_at,
        key.retired_at,
    )


async def retire_active_signing_keys(db: Db, at: datetime) -> list[str]:
    rows = await db.fetch(
        "UPDATE auth.signing_keys SET retired_at = $1 WHERE retired_at IS NULL RETURNING kid", at
    )
    return [row["kid"] for row in rows]


async def list_verifying_signing_keys(db: Db, retired_after: datetime) -> list[SigningKey]:
    """Active keys and keys retired after `retired_after`, newest first."""
    rows = await db.fetch(
        "SELECT kid, private_key_encrypted, public_jwk::text AS public_jwk, created_at, retired_at"
        " FROM auth.signing_keys WHERE retired_at IS NULL OR retired_at > $1"
        " ORDER BY created_at DESC",
        retired_after,
    )
    return [_signing_key(row) for row in rows]


# Change notifications -------------------------------------------------------------------


async def notify_change(db: Db, payload: str) -> None:
    """Tell every replica (LISTEN on CHANGES_CHANNEL) that cached state changed; sent on commit."""
    await db.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, payload)
