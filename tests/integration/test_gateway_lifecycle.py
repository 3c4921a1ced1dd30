"""The gateway's lifecycle: start-up that fails, presence refresh, and a drain that is
bounded whatever the clients do."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import nats
import pytest
import pytest_asyncio
from aiohttp import web
from nats.js.api import KeyValueConfig, StorageType
from prometheus_client import REGISTRY

from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_gateway.app import setup as gateway_setup
from parley_gateway.presence import Device
from parley_gateway.settings import GatewaySettings
from parley_protocol import framing, subjects
from parley_protocol.pb import client, presence
from parley_service import runtime as rt
from tests.integration.gateway_stack import App, RawClient, Stack, module_stack, start_stack


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> AsyncIterator[Stack]:
    async with module_stack(nats_server.url, postgres_server, "test_gwlc") as started:
        yield started


async def _online(c: RawClient, user_id: str) -> bool:
    reply = await c.request(presence_query=presence.PresenceQuery(user_ids=[user_id]))
    return bool(reply.presence_result.users[0].online)


def _gateway_tasks() -> set[str]:
    return {t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("gateway-")}


async def test_a_gateway_that_cannot_listen_leaves_nothing_running(
    nats_server: EmbeddedNats,
) -> None:
    before = _gateway_tasks()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = GatewaySettings(
            nats_url=nats_server.url,
            health_port=0,
            gateway_port=taken.getsockname()[1],
            gateway_id="gw-portless",
        )

        async def nothing(runtime: rt.Runtime) -> None:
            pass

        runtime = await rt.start(settings, nothing)
        try:
            with pytest.raises(OSError):
                await gateway_setup(runtime)
            # What it had started (routing, peer heartbeats) is stopped again, and the
            # runtime still knows how to stop the rest.
            assert _gateway_tasks() == before
            assert runtime.stop_hooks and runtime.drain_hooks
        finally:
            await rt.stop(runtime, drain=False)


async def test_the_presence_refresh_does_not_revive_a_session_that_ended_meanwhile(
    stack: Stack, app: App
) -> None:
    gw = stack.gateway()
    watcher = await stack.signed_in(app, "watcher")
    kim = await stack.signed_in(app, "kim", listening=True)
    snapshot = list(gw.sessions.values())  # what the refresh loop iterates over
    await kim.send(goodbye=client.Goodbye())
    await kim.expect_close(framing.CLOSE_NORMAL)
    assert not await _online(watcher, "kim")
    await gw.refresh_presence(snapshot)  # the loop's write, after kim left
    assert not await _online(watcher, "kim")
    await watcher.close()


async def test_a_connection_upgraded_as_the_drain_begins_is_closed_for_restart(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = await stack.add_gateway()
    runtime = stack.gateways.pop()
    real_prepare = web.WebSocketResponse.prepare

    async def prepare_then_drain(ws: web.WebSocketResponse, request: web.BaseRequest) -> Any:
        writer = await real_prepare(ws, request)
        gateway.draining = True  # the drain started while this upgrade was answered
        return writer

    monkeypatch.setattr(web.WebSocketResponse, "prepare", prepare_then_drain)
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(gateway.url + "/v1/connect")
            c = RawClient(ws)
            await c.expect_close(framing.CLOSE_SERVICE_RESTART)
        assert not gateway.sessions
    finally:
        monkeypatch.undo()
        await rt.stop(runtime, drain=False)


async def test_drain_ends_in_time_when_clients_do_not_answer_the_close(
    stack: Stack, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = await stack.add_gateway(drain_timeout_seconds=1.0)
    runtime = stack.gateways[-1]
    index = len(stack.gateways) - 1
    try:
        reading = await stack.signed_in(app, "reader", index=index)
        idle = await stack.signed_in(app, "idler", index=index)  # never reads again
        # One session busy signing in (its presence write hangs) with a client that does
        # not answer a close: its closing handshake cannot finish.
        reached, gate = asyncio.Event(), asyncio.Event()
        real_put: Callable[[Device], Awaitable[None]] = gateway.presence.put

        async def hanging_put(device: Device) -> None:
            if device.user_id == "stuck":
                reached.set()
                await gate.wait()
            await real_put(device)

        monkeypatch.setattr(gateway.presence, "put", hanging_put)
        stuck = await stack.connect(index)
        token = await stack.token(app, "stuck")
        await stuck.send(
            hello=client.Hello(access_token=token, application_key=app.key, user_id="stuck")
        )
        await asyncio.wait_for(reached.wait(), 5)
        (stuck_session,) = [s for s in gateway.sessions.values() if s.user_id == "stuck"]
        dropped = REGISTRY.get_sample_value(
            "parley_gateway_aborted_connections_total", {"reason": "drain_deadline"}
        )

        began = time.monotonic()
        await gateway.drain()
        took = time.monotonic() - began
        assert took < 1.0 + 0.5, took  # drain_timeout_seconds, and some scheduling
        await reading.expect_close(framing.CLOSE_SERVICE_RESTART)
        await idle.expect_close(framing.CLOSE_SERVICE_RESTART)  # read only now
        # The stuck one got the close frame, never answered it, and was dropped at the deadline.
        await stuck.expect_close(framing.CLOSE_SERVICE_RESTART)
        assert stuck_session.transport is not None and stuck_session.transport.is_closing()
        msg = await stuck.ws.receive(1)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR), msg
        after = REGISTRY.get_sample_value(
            "parley_gateway_aborted_connections_total", {"reason": "drain_deadline"}
        )
        assert (after or 0) == (dropped or 0) + 1
        gate.set()
    finally:
        monkeypatch.undo()
        stack.gateways.remove(runtime)
        await rt.stop(runtime, drain=False)


async def test_a_presence_bucket_with_a_shorter_ttl_sets_the_refresh_period(
    own_nats: EmbeddedNats, database_url: str
) -> None:
    nc = await nats.connect(own_nats.url)
    kv = await nc.jetstream().create_key_value(
        KeyValueConfig(
            bucket=subjects.PRESENCE_BUCKET,
            history=1,
            ttl=1.0,
            storage=StorageType.MEMORY,
            direct=True,
        )
    )
    stack = await start_stack(own_nats.url, database_url, presence_ttl_seconds=60.0)
    try:
        gw = stack.gateway()
        assert gw.presence.refresh_interval == pytest.approx(1.0 / 3)
        app = await stack.create_app()
        c = await stack.signed_in(app, "pia", listening=True)
        await asyncio.sleep(1.6)  # past the bucket's TTL: alive only if refreshed in time
        entry = await kv.get(subjects.presence_key(app.key, "pia", c.welcome.session_id))
        assert entry.value
        await c.close()
    finally:
        await stack.close()
        await nc.close()
