"""parley_service against a real NATS server and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import asyncpg
import nats
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parley_devstack.ports import free_port, port_is_free
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.pb import auth
from parley_service import runtime as rt
from parley_service.bus import request
from parley_service.db import apply_migrations, create_pool, load_migrations
from parley_service.settings import ServiceSettings, SettingsError

MIGRATIONS = "tests.integration.fixtures.sample_migrations"


def test_settings_come_from_parley_env_and_bad_values_name_the_variable() -> None:
    s = ServiceSettings.from_env({"PARLEY_HEALTH_PORT": "9100", "PARLEY_ENVIRONMENT": "production"})
    assert s.health_port == 9100 and s.environment == "production"
    with pytest.raises(SettingsError, match="PARLEY_HEALTH_PORT"):
        ServiceSettings.from_env({"PARLEY_HEALTH_PORT": "many"})
    with pytest.raises(SettingsError, match="PARLEY_ENVIRONMENT"):
        ServiceSettings.from_env({"PARLEY_ENVIRONMENT": "staging"})


def test_migrations_are_loaded_in_order() -> None:
    assert [(m.version, m.name) for m in load_migrations(MIGRATIONS)] == [
        (1, "create_items"),
        (2, "add_note"),
    ]


async def test_concurrent_migrators_apply_each_migration_once(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(apply_migrations(c, "sample", MIGRATIONS) for c in conns))
        assert sorted(results) == [[], [], [1, 2]]
        rows = await conns[0].fetch("SELECT version FROM sample.schema_migrations ORDER BY 1")
        assert [r["version"] for r in rows] == [1, 2]
        await conns[0].execute("INSERT INTO sample.items (name, note) VALUES ('a', 'b')")
        # A restart applies nothing new.
        assert await apply_migrations(conns[1], "sample", MIGRATIONS) == []
    finally:
        for c in conns:
            await c.close()


async def test_pooled_sessions_commit_synchronously_whatever_the_databases_default(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        plain = await asyncpg.connect(database_url)
        assert await plain.fetchval("SHOW synchronous_commit") == "off"
        await plain.close()
        pool = await create_pool(database_url, max_size=2)
        try:
            async with pool.acquire() as pooled:
                assert await pooled.fetchval("SHOW synchronous_commit") == "on"
        finally:
            await pool.close()
    finally:
        await conn.execute(f'ALTER DATABASE "{name}" RESET synchronous_commit')
        await conn.close()


def _settings(nats_url: str, database_url: str = "", **extra: object) -> ServiceSettings:
    base = ServiceSettings(
        service_name="sample", nats_url=nats_url, database_url=database_url, health_port=0
    )
    return dataclasses.replace(base, **extra)  # type: ignore[arg-type]


async def test_bus_endpoint_replies_errors_and_carries_trace_context(
    nats_server: object, span_exporter: InMemorySpanExporter
) -> None:
    url = nats_server.url  # type: ignore[attr-defined]

    async def lookup(req: auth.AppLookupRequest) -> auth.AppLookupResponse:
        if req.application_key == "missing":
            raise ParleyError(ErrorCode.ERROR_CODE_UNKNOWN_APPLICATION, "no such app", "key")
        if req.application_key == "boom":
            raise RuntimeError("bug")
        return auth.AppLookupResponse(application_key=req.application_key, name="demo")

    async def setup(runtime: rt.Runtime) -> None:
        runtime.bus.endpoint("test.lookup", auth.AppLookupRequest, lookup, queue="sample")

    runtime = await rt.start(_settings(url), setup)
    nc = await nats.connect(url)
    try:
        tracer = trace.get_tracer("test")
        with tracer.start_as_current_span("client-call") as parent:
            reply = await request(
                nc,
                "test.lookup",
                auth.AppLookupRequest(application_key="k1"),
                auth.AppLookupResponse,
            )
        assert reply.name == "demo"
        server_span = next(s for s in span_exporter.get_finished_spans() if s.name == "test.lookup")
        assert server_span.context.trace_id == parent.get_span_context().trace_id

        with pytest.raises(ParleyError) as info:
            await request(
                nc,
                "test.lookup",
                auth.AppLookupRequest(application_key="missing"),
                auth.AppLookupResponse,
            )
        assert info.value.code == ErrorCode.ERROR_CODE_UNKNOWN_APPLICATION
        assert (info.value.reason, info.value.field) == ("no such app", "key")

        with pytest.raises(ParleyError) as info:
            await request(
                nc,
                "test.lookup",
                auth.AppLookupRequest(application_key="boom"),
                auth.AppLookupResponse,
            )
        assert info.value.code == ErrorCode.ERROR_CODE_INTERNAL

        raw = await nc.request("test.lookup", b"\xff\xff garbage", timeout=2)
        assert raw.headers and raw.headers["Parley-Error"] == "INVALID_ARGUMENT"

        with pytest.raises(ParleyError) as info:
            await request(
                nc, "test.nobody", auth.AppLookupRequest(), auth.AppLookupResponse, timeout=1
            )
        assert info.value.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    finally:
        await nc.close()
        await rt.stop(runtime)


Ask = Callable[[str, str], Awaitable[auth.AppLookupResponse]]


@contextlib.asynccontextmanager
async def _held_requests(
    url: str, limit: int, subjects: dict[str, bool]
) -> AsyncIterator[tuple[Ask, asyncio.Event]]:
    """A runtime serving at most `limit` requests at once, whose endpoints (subject ->
    sheds_first) hold every request until the event is set; yields `ask(subject, key)`."""
    release = asyncio.Event()

    async def slow(req: auth.AppLookupRequest) -> auth.AppLookupResponse:
        await release.wait()
        return auth.AppLookupResponse(application_key=req.application_key)

    async def setup(runtime: rt.Runtime) -> None:
        for subject, sheds_first in subjects.items():
            runtime.bus.endpoint(
                subject, auth.AppLookupRequest, slow, "sample", sheds_first=sheds_first
            )

    runtime = await rt.start(_settings(url, max_concurrent_requests=limit), setup)
    nc = await nats.connect(url)

    def ask(subject: str, key: str) -> Awaitable[auth.AppLookupResponse]:
        return request(
            nc, subject, auth.AppLookupRequest(application_key=key), auth.AppLookupResponse
        )

    try:
        yield ask, release
    finally:
        await nc.close()
        await rt.stop(runtime)


async def test_requests_beyond_the_most_a_replica_serves_are_shed_at_once(
    nats_server: object,
) -> None:
    """Two requests under way (the limit): a third is answered UNAVAILABLE at once, not
    queued; once one finishes, requests are served again."""
    url = nats_server.url  # type: ignore[attr-defined]
    async with _held_requests(url, 2, {"test.slow": False}) as (ask, release):
        held = [asyncio.ensure_future(ask("test.slow", f"k{i}")) for i in range(2)]
        await asyncio.sleep(0.2)
        began = time.monotonic()
        with pytest.raises(ParleyError) as info:
            await ask("test.slow", "third")
        assert info.value.code == ErrorCode.ERROR_CODE_UNAVAILABLE
        assert "busy" in info.value.reason
        assert time.monotonic() - began < 1.0
        release.set()
        assert [r.application_key for r in await asyncio.gather(*held)] == ["k0", "k1"]
        assert (await ask("test.slow", "again")).application_key == "again"


async def test_requests_that_start_new_work_are_shed_first(nats_server: object) -> None:
    """Limit 4: new work is shed from 3 under way on, while a request that finishes
    accepted work still gets the fourth place."""
    url = nats_server.url  # type: ignore[attr-defined]
    subjects = {"test.new": True, "test.finish": False}
    async with _held_requests(url, 4, subjects) as (ask, release):
        held = [asyncio.ensure_future(ask("test.new", f"n{i}")) for i in range(3)]
        await asyncio.sleep(0.2)
        with pytest.raises(ParleyError) as info:
            await ask("test.new", "one new too many")
        assert info.value.code == ErrorCode.ERROR_CODE_UNAVAILABLE
        assert "busy (3 requests under way)" in info.value.reason
        held.append(asyncio.ensure_future(ask("test.finish", "f0")))
        await asyncio.sleep(0.2)
        with pytest.raises(ParleyError) as info:
            await ask("test.finish", "past the limit")
        assert "busy (4 requests under way)" in info.value.reason
        release.set()
        assert [r.application_key for r in await asyncio.gather(*held)] == ["n0", "n1", "n2", "f0"]


async def test_health_ready_metrics_and_drain_waits_for_work_in_flight(
    nats_server: object, database_url: str
) -> None:
    url = nats_server.url  # type: ignore[attr-defined]
    port = free_port()
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(req: auth.AppLookupRequest) -> auth.AppLookupResponse:
        started.set()
        await release.wait()
        return auth.AppLookupResponse(name="finished")

    async def setup(runtime: rt.Runtime) -> None:
        runtime.bus.endpoint("test.slow", auth.AppLookupRequest, slow, queue="sample")

    runtime = await rt.start(
        _settings(url, database_url, health_port=port),
        setup,
        rt.Migrations("sample", MIGRATIONS),
    )
    base = f"http://127.0.0.1:{port}"
    nc = await nats.connect(url)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 200, await r.text()
            pending = asyncio.create_task(
                request(nc, "test.slow", auth.AppLookupRequest(), auth.AppLookupResponse, 10)
            )
            await started.wait()
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
            assert "parley_bus_request_seconds" in text
            draining = asyncio.create_task(rt.stop(runtime))
            await asyncio.sleep(0.3)
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 503
                assert (await r.json())["status"] == "draining"
            assert not draining.done()  # waiting for the request in flight
            release.set()
            reply = await pending
            assert reply.name == "finished"
            await asyncio.wait_for(draining, 10)
    finally:
        await nc.close()


async def test_unreachable_nats_is_a_clear_start_up_error_and_nothing_is_left_open() -> None:
    port, health = free_port(), free_port()
    settings = ServiceSettings(
        service_name="sample",
        nats_url=f"nats://127.0.0.1:{port}",
        health_port=health,
        startup_timeout_seconds=1.0,
    )

    async def setup(runtime: rt.Runtime) -> None:
        raise AssertionError("setup must not run without NATS")

    began = time.monotonic()
    with pytest.raises(rt.StartupError, match=f"cannot reach NATS at nats://127.0.0.1:{port}"):
        await rt.start(settings, setup)
    assert time.monotonic() - began < 5
    assert port_is_free(health)  # the health port was closed again


async def test_a_nats_server_too_old_for_presence_is_a_clear_start_up_error() -> None:
    """A server that says it is NATS 2.10 (it speaks just enough of the protocol)."""

    async def old_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info = {"server_id": "old", "version": "2.10.22", "proto": 1, "headers": True}
        writer.write(b"INFO " + json.dumps(info).encode() + b"\r\n")
        while line := await reader.readline():
            if line.startswith(b"PING"):
                writer.write(b"PONG\r\n")
                await writer.drain()

    server = await asyncio.start_server(old_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    health = free_port()
    settings = ServiceSettings(
        service_name="sample", nats_url=f"nats://127.0.0.1:{port}", health_port=health
    )

    async def setup(runtime: rt.Runtime) -> None:
        raise AssertionError("setup must not run on a NATS that is too old")

    try:
        with pytest.raises(rt.StartupError, match=r"NATS server 2\.10\.22 is too old"):
            await rt.start(settings, setup)
        assert port_is_free(health)
    finally:
        server.close()


async def test_a_failing_setup_closes_what_start_opened(nats_server: object) -> None:
    health = free_port()
    settings = _settings(nats_server.url, health_port=health)  # type: ignore[attr-defined]

    async def setup(runtime: rt.Runtime) -> None:
        raise ValueError("bad wiring")

    with pytest.raises(ValueError, match="bad wiring"):
        await rt.start(settings, setup)
    assert port_is_free(health)


async def test_stopping_at_once_does_not_wait_for_work_in_flight(nats_server: object) -> None:
    url = nats_server.url  # type: ignore[attr-defined]
    started = asyncio.Event()

    async def stuck(req: auth.AppLookupRequest) -> auth.AppLookupResponse:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def setup(runtime: rt.Runtime) -> None:
        runtime.bus.endpoint("test.stuck", auth.AppLookupRequest, stuck, queue="sample")

    runtime = await rt.start(_settings(url), setup)
    nc = await nats.connect(url)
    try:
        pending = asyncio.create_task(
            request(nc, "test.stuck", auth.AppLookupRequest(), auth.AppLookupResponse, 30)
        )
        await started.wait()
        began = time.monotonic()
        await rt.stop(runtime, drain=False)
        assert time.monotonic() - began < 3
        pending.cancel()
    finally:
        await nc.close()


@pytest.mark.parametrize(
    ("env", "exit_code", "line"),
    [
        ({"PARLEY_LOG_LEVEL": "loud"}, 2, "parley-gateway: configuration error: PARLEY_LOG_LEVEL"),
        (
            {"PARLEY_NATS_URL": "nats://127.0.0.1:{port}", "PARLEY_STARTUP_TIMEOUT_SECONDS": "1"},
            1,
            "parley-gateway: cannot start: cannot reach NATS at nats://127.0.0.1:{port}",
        ),
    ],
)
async def test_a_service_process_that_cannot_start_says_why_in_one_line(
    env: dict[str, str], exit_code: int, line: str
) -> None:
    port = free_port()
    env = {k: v.format(port=port) for k, v in env.items()}
    base = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "parley_gateway",
        env={**base, "PARLEY_HEALTH_PORT": "0", "PARLEY_GATEWAY_PORT": "0", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    text = err.decode()
    assert proc.returncode == exit_code, text
    assert line.format(port=port) in text
    assert "Traceback" not in text
