"""Device events from the bus to sessions: never before the Welcome, never stalled by one
client that stops reading, never a message the session itself did not ask for, and a user
whose subscription failed is not left routed without one."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from prometheus_client import REGISTRY

from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_gateway import session as session_module
from parley_gateway.gateway import Gateway
from parley_gateway.presence import Device
from parley_gateway.session import MAX_HELD_FRAMES, Session
from parley_protocol import framing, subjects
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import client, common, routing
from parley_service import runtime as rt
from tests.integration.gateway_stack import App, Stack, eventually, module_stack

E = ErrorCode


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> AsyncIterator[Stack]:
    async with module_stack(nats_server.url, postgres_server, "test_gwd") as started:
        yield started


def _event(reason: str, **envelope: object) -> bytes:
    env = (
        client.Envelope(**envelope)
        if envelope
        else client.Envelope(error=common.Error(code=E.ERROR_CODE_NOT_FOUND, reason=reason))
    )
    data: bytes = routing.DeviceEvent(envelope=env.SerializeToString()).SerializeToString()
    return data


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _session_of(gw: Gateway, user_id: str) -> Session | None:
    return next((s for s in gw.sessions.values() if s.user_id == user_id), None)


def _gate_presence(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch, user_id: str
) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold the presence write of `user_id`'s sign-in (routing is done by then) until the
    second event is set; the first is set once the write is reached. The periodic presence
    refresh may write the entry while the routing is still being made: that write passes."""
    reached, gate = asyncio.Event(), asyncio.Event()
    real_put: Callable[[Device], Awaitable[None]] = gw.presence.put

    async def gated_put(device: Device) -> None:
        if device.user_id == user_id and isinstance(device, Session) and gw.router.routed(device):
            reached.set()
            await gate.wait()
        await real_put(device)

    monkeypatch.setattr(gw.presence, "put", gated_put)
    return reached, gate


async def test_events_during_sign_in_come_right_after_the_welcome_in_order(
    stack: Stack, app: App, bus: NATS, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = stack.gateway()
    subject = subjects.device_events(app.key, "lee")
    reached, gate = _gate_presence(gw, monkeypatch, "lee")
    token = await stack.token(app, "lee")
    c = await stack.connect()
    hello = asyncio.create_task(c.send_hello(token, app.key, "lee"))

    await asyncio.wait_for(reached.wait(), 5)  # routed; the presence write is under way
    taken = _metric("parley_gateway_device_events_total", outcome="delivered")
    for i in range(3):
        await bus.publish(subject, _event(f"ev{i}"))
    await bus.flush()

    async def taken_in() -> bool:
        return _metric("parley_gateway_device_events_total", outcome="delivered") == taken + 3

    await eventually(taken_in, what="three events taken for lee")
    await asyncio.sleep(0.05)
    assert not hello.done()  # nothing reached the client before its Welcome
    gate.set()
    first = await hello
    assert first.WhichOneof("body") == "welcome" and (first.seq, first.reply_to) == (1, 1)
    for i in range(3):
        ev = await c.recv()
        assert (ev.error.reason, ev.seq, ev.reply_to) == (f"ev{i}", i + 2, 0)
    session = _session_of(gw, "lee")
    assert session is not None and session.held is None  # no per-session buffer after
    await bus.publish(subject, _event("after"))
    assert (await c.recv()).error.reason == "after"
    await c.close()


async def test_too_many_events_during_sign_in_close_the_session_to_retry(
    stack: Stack, app: App, bus: NATS, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = stack.gateway()
    reached, gate = _gate_presence(gw, monkeypatch, "flooded")
    token = await stack.token(app, "flooded")
    c = await stack.connect()
    await c.send(hello=client.Hello(access_token=token, application_key=app.key, user_id="flooded"))

    await asyncio.wait_for(reached.wait(), 5)
    # Through the resume window, as services publish (each acknowledged once stored).
    js = bus.jetstream()
    overflows = _metric("parley_gateway_device_events_total", outcome="held_overflow")
    for i in range(MAX_HELD_FRAMES + 1):
        await js.publish(subjects.device_events(app.key, "flooded"), _event(f"ev{i}"))
    await eventually(
        lambda: _async(
            _metric("parley_gateway_device_events_total", outcome="held_overflow") > overflows
        ),
        what="the held events overflowed",
        timeout=15.0,
    )
    error = await c.expect_error(E.ERROR_CODE_UNAVAILABLE)
    assert "signing in" in error.reason
    await c.expect_close(framing.CLOSE_TRY_AGAIN_LATER)
    gate.set()
    await eventually(
        lambda: _async(_session_of(gw, "flooded") is None), what="the session cleaned up"
    )
    again = await stack.signed_in(app, "flooded")  # reconnecting works
    await again.close()


async def _async(value: bool) -> bool:
    return value


async def test_a_client_that_stops_reading_is_dropped_without_stalling_others(
    stack: Stack, app: App, bus: NATS
) -> None:
    gw = stack.gateway()
    # A small receive buffer, so the client's kernel stops taking data soon.
    connector = aiohttp.TCPConnector(socket_factory=_small_receive_buffer)
    async with aiohttp.ClientSession(connector=connector) as http:
        ws = await http.ws_connect(gw.url + "/v1/connect")
        token = await stack.token(app, "sloth")
        await ws.send_bytes(
            client.Envelope(
                seq=1,
                hello=client.Hello(access_token=token, application_key=app.key, user_id="sloth"),
            ).SerializeToString()
        )
        welcome = client.Envelope.FromString((await ws.receive(5)).data)
        assert welcome.WhichOneof("body") == "welcome"
        bob = await stack.signed_in(app, "bob")
        aborted = _metric("parley_gateway_aborted_connections_total", reason="slow_consumer")
        big = "x" * 60_000
        for _ in range(400):  # the sloth never reads from here on
            await bus.publish(subjects.device_events(app.key, "sloth"), _event(big))
            if welcome.welcome.session_id not in gw.sessions:
                break
            await asyncio.sleep(0.001)
        await eventually(
            lambda: _async(welcome.welcome.session_id not in gw.sessions),
            what="the slow client dropped",
        )
        assert (
            _metric("parley_gateway_aborted_connections_total", reason="slow_consumer")
            == aborted + 1
        )
        # Events for others flow at once; nothing waits in the gateway's queue.
        await bus.publish(subjects.device_events(app.key, "bob"), _event("hi bob"))
        assert (await bob.recv(timeout=1)).error.reason == "hi bob"
        assert gw.router.mux.queue.qsize() == 0
        await bob.ping()
        await bob.close()
        await ws.close()


async def test_a_silent_client_that_stopped_reading_is_closed_and_then_dropped(
    stack: Stack, app: App, bus: NATS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_module, "CLOSE_LINGER_SECONDS", 0.2)
    gw = await stack.add_gateway(heartbeat_interval_ms=400)  # silent for 1 s: closed
    runtime = stack.gateways[-1]
    connector = aiohttp.TCPConnector(socket_factory=_small_receive_buffer)
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            ws = await http.ws_connect(gw.url + "/v1/connect")
            token = await stack.token(app, "mute")
            await ws.send_bytes(
                client.Envelope(
                    seq=1,
                    hello=client.Hello(access_token=token, application_key=app.key, user_id="mute"),
                ).SerializeToString()
            )
            assert client.Envelope.FromString((await ws.receive(5)).data).HasField("welcome")
            (session,) = gw.sessions.values()
            dropped = _metric("parley_gateway_aborted_connections_total", reason="close_timeout")
            # Output waits in the gateway (the client's buffers are full), under the cap.
            while session.buffered() == 0:
                await bus.publish(subjects.device_events(app.key, "mute"), _event("x" * 60_000))
                await bus.flush()
                await asyncio.sleep(0.01)
            assert session.active

            async def dropped_after_close() -> bool:
                metric = _metric("parley_gateway_aborted_connections_total", reason="close_timeout")
                return not gw.sessions and metric == dropped + 1

            await eventually(dropped_after_close, what="heartbeat close, then the drop")
            assert session.transport is not None and session.transport.is_closing()
            assert session.buffered() == 0
            await ws.close()
    finally:
        stack.gateways.remove(runtime)
        await rt.stop(runtime, drain=False)


def _small_receive_buffer(addr_info: tuple[int, int, int, str, tuple[str, int]]) -> socket.socket:
    family, type_, proto = addr_info[:3]
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    return sock


@pytest.mark.parametrize(
    ("what", "envelope"),
    [
        ("welcome", {"welcome": client.Welcome(session_id="forged")}),
        ("token_accepted", {"token_accepted": client.TokenAccepted()}),
        ("listen_accepted", {"listen_accepted": client.ListenAccepted(listening=True)}),
        ("pong", {"pong": client.Pong()}),
        ("a client message", {"ping": client.Ping()}),
        (
            "an oversized error",
            {"error": common.Error(reason="x" * framing.MAX_FRAME_BYTES)},
        ),
    ],
)
async def test_session_control_and_oversized_events_are_refused(
    stack: Stack, app: App, bus: NATS, what: str, envelope: dict[str, object]
) -> None:
    c = await stack.signed_in(app, "vic")
    bad_before = _metric("parley_gateway_device_events_total", outcome="bad_event")
    await bus.publish(subjects.device_events(app.key, "vic"), _event("", **envelope))
    await bus.publish(subjects.device_events(app.key, "vic"), _event("the real one"))
    got = await c.recv()
    assert got.error.reason == "the real one", f"{what} was relayed: {got}"
    assert _metric("parley_gateway_device_events_total", outcome="bad_event") == bad_before + 1
    await c.close()


async def test_a_failed_first_subscribe_fails_every_session_of_the_user_waiting_for_it(
    stack: Stack, app: App, bus: NATS, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = stack.gateway()
    subject = subjects.user_events(app.key, "una", live=True)  # what the gateway subscribes to
    real_add = gw.router.mux.add

    async def failing_add(s: str, confirm: bool = True) -> None:
        await real_add(s, confirm)
        if s == subject:  # the subscription's confirmation fails, once both wait for it

            async def both_joined() -> bool:
                return len(gw.router._users.get(subject, ())) == 2

            await eventually(both_joined, what="the second session joined")
            raise ConnectionError("NATS connection lost")

    monkeypatch.setattr(gw.router.mux, "add", failing_add)
    first, second = await stack.connect(), await stack.connect()
    tokens = [await stack.token(app, "una"), await stack.token(app, "una")]
    replies = await asyncio.gather(
        first.send_hello(tokens[0], app.key, "una"), second.send_hello(tokens[1], app.key, "una")
    )
    for c, reply in zip((first, second), replies, strict=True):
        assert reply.WhichOneof("body") == "error", reply  # no Welcome without the route
        assert reply.error.code == E.ERROR_CODE_UNAVAILABLE
        await c.expect_close(framing.CLOSE_TRY_AGAIN_LATER)
    assert subject not in gw.router._users
    assert subject not in gw.router.mux  # the half-made subscription is gone too

    monkeypatch.undo()
    again = await stack.signed_in(app, "una")
    await bus.publish(subjects.device_events(app.key, "una"), _event("routed again"))
    assert (await again.recv()).error.reason == "routed again"
    await again.close()
