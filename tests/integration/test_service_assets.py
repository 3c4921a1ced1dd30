"""A service's JetStream assets are kept in place by the runtime: made at declaration, made
again after a NATS restart (memory storage forgets them), after a deletion, and readiness
tells the truth meanwhile."""

from __future__ import annotations

import asyncio

import aiohttp
import nats
from nats.js.api import KeyValueConfig, StorageType, StreamConfig

from parley_devstack.nats import EmbeddedNats
from parley_service import runtime as rt
from parley_service.assets import KeyValueBucket, Stream
from parley_service.settings import ServiceSettings
from tests.support.wire import eventually


async def _ready(runtime: rt.Runtime) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{runtime.health.port}/readyz") as resp:
            return resp.status, await resp.json()


async def _start(url: str, restored: list[int]) -> rt.Runtime:
    async def setup(runtime: rt.Runtime) -> None:
        await runtime.assets.add(
            KeyValueBucket(KeyValueConfig(bucket="sample_kv", storage=StorageType.MEMORY, ttl=60))
        )
        await runtime.assets.add(
            Stream(
                StreamConfig(
                    name="SAMPLE_WORK",
                    subjects=["sample.work.>"],
                    storage=StorageType.FILE,
                    max_age=600,
                )
            )
        )

        async def rewrite() -> None:
            restored.append(runtime.assets.restorations)
            await runtime.nc.jetstream().publish("sample.work.marker", b"rewritten")

        runtime.assets.on_restored(rewrite)

    settings = ServiceSettings(
        service_name="sample", nats_url=url, health_port=0, asset_check_seconds=0.2
    )
    return await rt.start(settings, setup)


async def test_assets_come_back_after_a_nats_restart_and_readiness_says_so(
    own_nats: EmbeddedNats,
) -> None:
    restored: list[int] = []
    runtime = await _start(own_nats.url, restored)
    try:
        assert (await _ready(runtime))[0] == 200
        assert runtime.assets.names == ["KV bucket sample_kv", "stream SAMPLE_WORK"]
        js = runtime.nc.jetstream()
        await js.publish("sample.work.one", b"kept on disk")

        assert own_nats.kill()
        status, body = await _ready(runtime)
        assert status == 503 and "NATS is not connected" in str(body["reasons"])
        await asyncio.sleep(0.5)
        await own_nats.start()  # same port, same store: the file stream survives, memory not

        async def back() -> bool:
            return (await _ready(runtime))[0] == 200 and bool(restored)

        await eventually(back, timeout=10, what="assets restored and ready again")
        kv = await js.key_value("sample_kv")
        await kv.put("k", b"v")  # the memory bucket exists again
        info = await js.stream_info("SAMPLE_WORK")
        assert info.state.messages == 2  # the file stream kept its message; the hook added one
    finally:
        await rt.stop(runtime, drain=False)


async def test_a_deleted_asset_is_made_again_and_missing_meanwhile(
    own_nats: EmbeddedNats,
) -> None:
    restored: list[int] = []
    runtime = await _start(own_nats.url, restored)
    nc = await nats.connect(own_nats.url)
    try:
        js = nc.jetstream()
        await js.delete_stream("SAMPLE_WORK")
        await eventually(
            lambda: _has_stream(js, "SAMPLE_WORK"), timeout=5, what="the stream made again"
        )
        assert restored
        # An operation that finds an asset gone reports it; readiness names it until it is back.
        runtime.assets._missing.add("stream SAMPLE_WORK")
        status, body = await _ready(runtime)
        assert status == 503
        assert body["reasons"] == ["JetStream assets missing: stream SAMPLE_WORK"]
        runtime.assets.lost("a test says so")
        await eventually(lambda: _ready_ok(runtime), timeout=5, what="ready again")
    finally:
        await nc.close()
        await rt.stop(runtime, drain=False)


async def _has_stream(js: object, name: str) -> bool:
    try:
        await js.stream_info(name)  # type: ignore[attr-defined]
    except Exception:
        return False
    return True


async def _ready_ok(runtime: rt.Runtime) -> bool:
    return (await _ready(runtime))[0] == 200
