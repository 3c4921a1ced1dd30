"""Shared fixtures: one embedded NATS and one embedded PostgreSQL per test session, and a
fresh database per test (``database_url``)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """Every span this test process finishes (OpenTelemetry allows one global provider)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest_asyncio.fixture(scope="session")
async def nats_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedNats]:
    """NATS with JetStream on a free port; ``nats_server.url`` to connect."""
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="session")
async def postgres_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[EmbeddedPostgres]:
    """PostgreSQL 16 on 127.0.0.1 and a free port.

    Its data lives outside pytest's temp root: each pytest session tightens that root to
    0700, which would lock out the `pgserver` user of a concurrently running session.
    """
    base = Path(tempfile.mkdtemp(prefix="parley-test-pg-"))
    os.chmod(base, 0o755)
    server = EmbeddedPostgres(base)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest_asyncio.fixture
async def database_url(postgres_server: EmbeddedPostgres) -> AsyncIterator[str]:
    """DSN of a new, empty database for this test (dropped afterwards)."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    dsn = await postgres_server.create_database(name)
    yield dsn
    if postgres_server.running:
        await postgres_server.drop_database(name)


# A test module that collects nothing (a misspelt test function, a bad import guard) is an
# error, not a silent pass: every tests/**/test_*.py file must yield at least one test.
_modules_seen: set[str] = set()
_modules_with_tests: set[str] = set()


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.nodeid.endswith(".py") and "/test_" in "/" + report.nodeid:
        _modules_seen.add(report.nodeid)
        if any(isinstance(item, pytest.Item) for item in report.result):
            _modules_with_tests.add(report.nodeid)
        elif any(isinstance(c, pytest.Class) for c in report.result):
            _modules_with_tests.add(report.nodeid)


def pytest_collection_finish(session: pytest.Session) -> None:
    empty = sorted(_modules_seen - _modules_with_tests)
    if empty and not session.config.option.keyword and not session.config.option.markexpr:
        raise pytest.UsageError(f"test modules that collect no test: {', '.join(empty)}")
