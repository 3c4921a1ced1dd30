"""`PARLEY_MIGRATE_ONLY=true`: a service applies its migrations against a real PostgreSQL and
exits, without NATS (what the Helm chart's migration job runs before installs and upgrades)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import asyncpg

from parley_devstack.services import discover
from parley_service.db import load_migrations
from tests.integration.test_auth_service import MASTER_KEY

# Nothing listens here: a migration must not need NATS.
NO_NATS = "nats://127.0.0.1:9"
SCHEMAS = {"auth": "auth", "messaging": "messaging", "push": "push", "stats": "stats"}


async def run_service(module: str, **env: str) -> tuple[int, list[dict[str, Any]], str]:
    """(exit code, the JSON log lines, stderr) of `python -m <module>`."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    full.update(PARLEY_NATS_URL=NO_NATS, PARLEY_LOG_FORMAT="json", **env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        env=full,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    text = err.decode()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return proc.returncode, lines, text


def applied_by(lines: list[dict[str, Any]]) -> list[int]:
    done = [line for line in lines if line["event"] == "migrations_done"]
    assert len(done) == 1, lines
    versions: list[int] = done[0]["applied"]
    return versions


async def migrate(service: str, database_url: str, **env: str) -> tuple[int, list[int], str]:
    code, lines, text = await run_service(
        f"parley_{service}",
        PARLEY_MIGRATE_ONLY="true",
        PARLEY_DATABASE_URL=database_url,
        PARLEY_AUTH_MASTER_KEY=MASTER_KEY,
        **env,
    )
    return code, (applied_by(lines) if code == 0 else []), text


async def test_every_database_service_migrates_and_exits_without_nats(database_url: str) -> None:
    services = [s.name for s in discover() if s.database]
    assert set(services) == set(SCHEMAS)  # a new service with tables: name its schema here
    results = await asyncio.gather(*(migrate(s, database_url) for s in services))
    conn = await asyncpg.connect(database_url)
    try:
        for service, (code, applied, text) in zip(services, results, strict=True):
            assert code == 0, text
            every = [m.version for m in load_migrations(f"parley_{service}.migrations")]
            assert applied == every
            rows = await conn.fetch(
                f'SELECT version FROM "{SCHEMAS[service]}".schema_migrations ORDER BY version'
            )
            assert [r["version"] for r in rows] == every
    finally:
        await conn.close()
    # Again: nothing left to apply, and still a success.
    code, applied, text = await migrate("stats", database_url)
    assert (code, applied) == (0, []), text


async def test_two_jobs_at_once_apply_each_migration_once(database_url: str) -> None:
    first, second = await asyncio.gather(
        migrate("stats", database_url), migrate("stats", database_url)
    )
    assert first[0] == 0, first[2]
    assert second[0] == 0, second[2]
    every = [m.version for m in load_migrations("parley_stats.migrations")]
    # The advisory lock: one applied them all, the other found them applied.
    assert sorted([first[1], second[1]]) == [[], every]


async def test_a_service_without_tables_or_a_url_is_a_configuration_error(
    database_url: str,
) -> None:
    code, _, text = await run_service(
        "parley_calls", PARLEY_MIGRATE_ONLY="true", PARLEY_DATABASE_URL=database_url
    )
    assert code == 2
    assert "PARLEY_MIGRATE_ONLY: the calls service keeps no tables" in text
    code, _, text = await run_service("parley_stats", PARLEY_MIGRATE_ONLY="true")
    # The service's own settings or the runtime name the missing variable.
    assert code == 2
    assert "configuration error: PARLEY_" in text and "PARLEY_DATABASE_URL" in text


async def test_an_unreachable_database_fails_within_the_startup_timeout() -> None:
    code, _, text = await run_service(
        "parley_stats",
        PARLEY_MIGRATE_ONLY="true",
        PARLEY_DATABASE_URL="postgresql://parley@127.0.0.1:9/parley",
        PARLEY_STARTUP_TIMEOUT_SECONDS="1",
    )
    assert code == 1
    assert "parley-stats: cannot start: cannot reach PostgreSQL at" in text
