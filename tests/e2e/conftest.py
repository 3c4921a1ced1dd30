"""End-to-end fixtures: auth and two gateway replicas as processes, reference clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres

from .stack import E2EStack, start_stack


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: EmbeddedNats,
    postgres_server: EmbeddedPostgres,
) -> AsyncIterator[E2EStack]:
    """One deployment per test module: auth + gateway-a + gateway-b on the session's NATS."""
    home = tmp_path_factory.mktemp("stack")
    db = await postgres_server.create_database(f"e2e_{home.name.replace('-', '_')[:40]}")
    running = await start_stack(home, nats_server.url, db)
    try:
        yield running
    finally:
        await running.devstack.stop()
