"""Session resume end to end: reference clients, gateway processes, real NATS. A client
misses no event, and gets none twice, when its gateway is killed or its network goes
silent; a resume past the window starts a new session that features hear of; a forged
session leaks nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio

from parley.v1 import echo_pb2
from parley_client import ParleyClient
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_protocol.pb import client as pb
from parley_service.devices import DeviceEvents
from tests.support.echo.feature import EchoFeature
from tests.support.proxy import TcpProxy
from tests.support.wire import RawClient, bounded, eventually

from .stack import E2EStack, start_stack

RATE = 50  # events a second while the connection breaks


@pytest_asyncio.fixture
async def stack(
    tmp_path: Path, nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> AsyncIterator[E2EStack]:
    """A deployment of its own per test (one test kills a gateway)."""
    db = await postgres_server.create_database(
        f"e2e_resume_{tmp_path.name[-20:].replace('-', '_')}"
    )
    running = await start_stack(tmp_path / "home", nats_server.url, db)
    try:
        yield running
    finally:
        await running.devstack.stop()


class Stream:
    """Events 0, 1, 2, ... to one user, at a steady rate, through the shared helper."""

    def __init__(self, stack: E2EStack, user: str) -> None:
        self._stack, self._user = stack, user
        self.sent = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Stream:
        self._nc = await nats.connect(self._stack.devstack.nats_url)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        events = DeviceEvents(self._nc)
        while not self._stop.is_set():
            event = echo_pb2.EchoEvent(text=str(self.sent))
            await events.to_user(self._stack.app_key, self._user, event)
            self.sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1 / RATE)

    async def __aexit__(self, *exc: object) -> None:
        # Not cancelled mid-publish: an event the window took is counted as sent.
        assert self._task is not None
        self._stop.set()
        await self._task
        await self._nc.close()


async def _received_all(feature: EchoFeature, sent: int, got: list[int]) -> bool:
    while not feature.events.empty():
        got.append(int(feature.events.get_nowait().text))
    return len(got) >= sent


async def _started(
    stack: E2EStack, user: str, state: Path, hosts: list[str]
) -> tuple[ParleyClient, EchoFeature]:
    client = (
        ParleyClient.builder()
        .application_key(stack.app_key)
        .application_secret(stack.app_secret)
        .user_id(user)
        .environment_hosts(hosts)
        .persistence_dir(state)
        .heartbeat_interval(1.0)
        .build()
    )
    client.set_support_messaging(True)
    feature = EchoFeature()
    client.add_feature(feature)
    await client.start()
    return client, feature


@bounded(90)
async def test_a_killed_gateway_loses_no_event_of_its_clients(
    stack: E2EStack, tmp_path: Path
) -> None:
    user = "kay .*>"
    client, feature = await _started(
        stack, user, tmp_path, [stack.host("gateway-a"), stack.host("gateway-b")]
    )
    got: list[int] = []
    try:
        assert client.gateway_id == "gateway-a"
        async with Stream(stack, user) as stream:
            await asyncio.sleep(1.0)
            stack.kill("gateway-a")
            await eventually(lambda: _gateway_is(client, "gateway-b"), timeout=10)
            await asyncio.sleep(1.0)
        await eventually(
            lambda: _received_all(feature, stream.sent, got), timeout=10, what="every event"
        )
        assert got == list(range(stream.sent)), "each event once, in order"
        assert stream.sent > RATE  # the stream ran across the crash
        last = feature.connections[-1]
        assert last.reconnected and last.resumed and last.gateway_id == "gateway-b"
        assert client.resume_stats.resumed == 1
    finally:
        await client.terminate()


@bounded(90)
async def test_a_silent_network_loses_no_event_and_the_old_connection_is_closed(
    stack: E2EStack, tmp_path: Path
) -> None:
    user = "net switch"
    port = stack.devstack.ports["gateway-a"].public
    assert port is not None
    proxy = TcpProxy("127.0.0.1", port)
    await proxy.start()
    client, feature = await _started(stack, user, tmp_path, [proxy.host, stack.host("gateway-b")])
    got: list[int] = []
    try:
        assert client.gateway_id == "gateway-a"
        async with Stream(stack, user) as stream:
            await asyncio.sleep(1.0)
            proxy.freeze()  # gateway-a keeps writing to a connection that leads nowhere
            await eventually(lambda: _gateway_is(client, "gateway-b"), timeout=15)
            await asyncio.sleep(1.0)
        await eventually(
            lambda: _received_all(feature, stream.sent, got), timeout=10, what="every event"
        )
        assert got == list(range(stream.sent)), "each event once, in order"
        assert feature.connections[-1].resumed
        assert client.resume_stats.resumed == 1
        # Gateway-a was told: the session it still held is gone from it.
        assert "session_taken_over" in stack.output()
    finally:
        await client.terminate()
        await proxy.stop()


@bounded(90)
async def test_a_resume_past_the_window_starts_a_new_session_and_features_hear_it(
    tmp_path: Path, postgres_server: EmbeddedPostgres
) -> None:
    # A NATS of its own: the window and the presence bucket belong to a whole deployment.
    own_nats = EmbeddedNats(tmp_path / "nats")
    await own_nats.start()
    db = await postgres_server.create_database(
        f"e2e_window_{tmp_path.name[-20:].replace('-', '_')}"
    )
    short = {"PARLEY_EVENT_WINDOW_SECONDS": "1", "PARLEY_PRESENCE_TTL_SECONDS": "1"}
    stack = await start_stack(
        tmp_path / "home", own_nats.url, db, gateways=("gateway-a",), gateway_env=short
    )
    port = stack.devstack.ports["gateway-a"].public
    assert port is not None
    proxy = TcpProxy("127.0.0.1", port)
    await proxy.start()
    client: ParleyClient | None = None
    try:
        client, feature = await _started(stack, "late", tmp_path, [proxy.host])
        first_session = client.session_id
        proxy.cut()  # the gateway sees the connection end; the client cannot come back yet
        await asyncio.sleep(3.0)  # longer than the window
        proxy.thaw()
        await eventually(lambda: _session_changed(client, first_session), timeout=15)
        last = feature.connections[-1]
        assert last.reconnected and not last.resumed, "features are told to resynchronise"
        assert client.resume_stats.fresh_after_failed_resume == 1
        assert "resume_refused" in stack.output()
        # The new session works.
        async with Stream(stack, "late") as stream:
            await asyncio.sleep(0.5)
        got: list[int] = []
        await eventually(lambda: _received_all(feature, stream.sent, got), timeout=5)
        assert got == list(range(stream.sent))
    finally:
        if client is not None:
            await client.terminate()
        await proxy.stop()
        await stack.devstack.stop()
        await own_nats.stop()


@bounded(90)
async def test_a_forged_or_foreign_session_is_refused_and_nothing_leaks(
    stack: E2EStack, tmp_path: Path
) -> None:
    victim, feature = await _started(stack, "victim", tmp_path / "v", [stack.host("gateway-a")])
    session = victim.session_id
    assert session
    try:
        async with Stream(stack, "victim") as stream:
            await asyncio.sleep(0.3)
        # Another user, and another device of the same user, name the victim's session.
        for user in ("thief", "victim"):
            raw = await RawClient.open(stack.ws("gateway-b"))
            try:
                await raw.send(
                    hello=pb.Hello(
                        access_token=await stack.access_token(user),
                        application_key=stack.app_key,
                        user_id=user,
                        capabilities=pb.Capabilities(messaging=True),
                        resume_session_id=session,
                        resume_from_event=0,
                    )
                )
                welcome = (await raw.recv()).welcome
                expected = (
                    pb.RESUME_OUTCOME_EXPIRED if user == "thief" else pb.RESUME_OUTCOME_REFUSED
                )
                assert welcome.resume == expected and welcome.session_id != session
                with pytest.raises(TimeoutError):
                    await raw.ws.receive(timeout=0.5)  # none of the victim's events replayed
            finally:
                await raw.close()
        got: list[int] = []
        await eventually(lambda: _received_all(feature, stream.sent, got), timeout=5)
        assert got == list(range(stream.sent))
        assert victim.session_id == session and victim.is_started  # undisturbed
    finally:
        await victim.terminate()


async def _gateway_is(client: ParleyClient, gateway: str) -> bool:
    return client.is_started and client.gateway_id == gateway


async def _session_changed(client: ParleyClient, before: str | None) -> bool:
    return client.is_started and client.session_id not in (None, before)
