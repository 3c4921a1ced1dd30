"""parley_service against a real NATS server and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import asyncpg
import nats
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parley_devstack.ports import free_port
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.pb import auth
from parley_service import runtime as rt
from parley_service.bus import request
from parley_service.db import apply_migrations, load_migrations
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
