"""Fixtures shared by the integration tests (a module defines its own `stack`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest_asyncio
from nats.aio.client import Client as NATS

from parley_devstack.nats import EmbeddedNats
from tests.integration.gateway_stack import App, Stack


@pytest_asyncio.fixture(scope="module")
async def app(stack: Stack) -> App:
    """An application of the module's stack."""
    return await stack.create_app()


@pytest_asyncio.fixture
async def bus(nats_server: EmbeddedNats) -> AsyncIterator[NATS]:
    """A plain NATS connection, as another service would hold."""
    nc = await nats.connect(nats_server.url)
    yield nc
    await nc.close()


@pytest_asyncio.fixture
async def own_nats(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """A NATS server of the test's own (for buckets whose settings the test decides)."""
    server = EmbeddedNats(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
