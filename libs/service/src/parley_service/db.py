"""PostgreSQL: an asyncpg pool and numbered SQL migrations per service schema.

Migrations are files `NNNN_name.sql` in a package folder; each schema keeps its own
`<schema>.schema_migrations` table. They are applied at start under an advisory lock, so
replicas starting together apply each one exactly once.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from importlib import resources

import asyncpg

from parley_service.logs import get_logger

log = get_logger("parley.db")

_MIGRATION_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migrations:
    """A service's schema and the package holding its `NNNN_name.sql` files."""

    schema: str
    package: str


# What a query raises while PostgreSQL is down or restarting (not a bug of the caller's).
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset
    TimeoutError,
    asyncpg.PostgresConnectionError,  # lost connection, cannot connect now
    asyncpg.InterfaceError,  # the connection was closed under the query
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` means "the database cannot be reached now": a retryable error."""
    return isinstance(exc, _UNAVAILABLE_ERRORS)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str) -> list[Migration]:
    """Read `NNNN_name.sql` files from a package (e.g. `parley_auth.migrations`), in order."""
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
        elif entry.name.endswith(".sql"):
            raise ValueError(f"migration file {entry.name!r} is not named NNNN_name.sql")
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations of {package} share a number: {versions}")
    return found


def _lock_id(schema: str) -> int:
    return zlib.crc32(f"parley.migrate.{schema}".encode())


async def apply_migrations(conn: asyncpg.Connection, schema: str, package: str) -> list[int]:
    """Apply the migrations not yet applied to `schema`; return the versions applied."""
    migrations = load_migrations(package)
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _lock_id(schema))
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
        done = {row["version"] for row in rows}
        for migration in migrations:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(f'SET LOCAL search_path TO "{schema}"')
                await conn.execute(migration.sql)
                await conn.execute(
                    f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES ($1, $2)',
                    migration.version,
                    migration.name,
                )
            applied_now.append(migration.version)
            log.info(
                "migration_applied", schema=schema, version=migration.version, name=migration.name
            )
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _lock_id(schema))
    return applied_now


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """A pooled connection goes back as it is. asyncpg rolls back a transaction left open
    before it calls this; the default reset query (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL) would cost one more round trip to PostgreSQL on every release, and nothing
    here needs it: no session SET, LISTEN, cursor or advisory lock outlives an acquire
    (migrations and listeners use connections of their own)."""


# Session settings of every pooled connection, sent when it connects (no round trip later).
# Synchronous commit on: a COMMIT (or a statement outside a transaction) returns only once
# the WAL is on disk, whatever the server's, the database's or the role's default, so what a
# service acknowledges survives a crash of PostgreSQL.
SESSION_SETTINGS = {"synchronous_commit": "on"}


async def create_pool(dsn: str, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        reset=_nothing_to_reset,
        server_settings=SESSION_SETTINGS,
    )
    assert pool is not None
    return pool


async def migrate(dsn: str, schema: str, package: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn, schema, package)
    finally:
        await conn.close()
