"""Routed client requests and device events, through real gateways, NATS and a real service:
the echo capability, answered by its service in process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from prometheus_client import REGISTRY

from parley.v1 import echo_pb2, options_pb2, routing_pb2
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_protocol import bodies, framing
from parley_protocol.clock import SystemClock
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.pb import client
from parley_service import runtime as rt
from parley_service.bus import request as bus_request
from parley_service.client_requests import Caller
from parley_service.devices import DeviceEvents
from parley_service.presence import GatewayLiveness, PresenceReader
from tests.integration.gateway_stack import App, RawClient, Stack, module_stack
from tests.support.echo.app import EchoSettings, handlers_of
from tests.support.echo.app import setup as echo_setup
from tests.support.echo.handlers import EchoHandlers
from tests.support.wire import eventually

E = ErrorCode


def _routed(outcome: str) -> float:
    labels = {"service": "echo", "body": "echo_request", "outcome": outcome}
    return REGISTRY.get_sample_value("parley_gateway_routed_requests_total", labels) or 0.0


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> AsyncIterator[Stack]:
    async with module_stack(nats_server.url, postgres_server, "test_creq", gateways=2) as s:
        yield s


@pytest_asyncio.fixture
async def echo(nats_server: EmbeddedNats) -> AsyncIterator[EchoHandlers]:
    runtime = await rt.start(EchoSettings(nats_url=nats_server.url, health_port=0), echo_setup)
    try:
        yield handlers_of(runtime)
    finally:
        await rt.stop(runtime, drain=False)


async def _hello(
    c: RawClient,
    stack: Stack,
    app: App,
    user_id: str,
    listening: bool = False,
    **capabilities: bool,
) -> client.Welcome:
    token = await stack.token(app, user_id)
    await c.send(
        hello=client.Hello(
            access_token=token,
            application_key=app.key,
            user_id=user_id,
            capabilities=client.Capabilities(**capabilities),
            client_version="tests",
            listening=listening,
        )
    )
    reply = await c.recv()
    assert reply.WhichOneof("body") == "welcome", reply
    return reply.welcome


async def test_a_routed_request_reaches_its_service_with_the_verified_caller(
    stack: Stack, app: App, echo: EchoHandlers
) -> None:
    user = "ann o.*>"
    ok_before = _routed("ok")
    for index in (0, 1):  # through either gateway replica
        c = await stack.connect(index)
        try:
            welcome = await _hello(c, stack, app, user, messaging=True, calling=True)
            reply = await c.request(
                echo_request=echo_pb2.EchoRequest(
                    text="hello",
                    claimed_user_id="mallory",
                    claimed_application_key="00000000-0000-0000-0000-000000000000",
                )
            )
        finally:
            await c.close()
        assert reply.WhichOneof("body") == "echo_reply"
        caller = reply.echo_reply.caller
        assert reply.echo_reply.text == "hello"
        assert caller.user_id == user
        assert caller.application_key == app.key
        assert caller.gateway_id == welcome.gateway_id == stack.gateway(index).gateway_id
        assert caller.connection_id == caller.session_id == welcome.session_id
        assert caller.instance_id
        assert list(caller.capabilities) == [
            options_pb2.CAPABILITY_CALLING,
            options_pb2.CAPABILITY_MESSAGING,
        ]
        seen_caller, seen_request = echo.seen[-1]
        assert (seen_caller.user_id, seen_caller.application_key) == (user, app.key)
        assert seen_request.claimed_user_id == "mallory"
    assert _routed("ok") == ok_before + 2


async def test_a_body_whose_capability_was_not_announced_is_refused_and_the_session_lives(
    stack: Stack, app: App, echo: EchoHandlers
) -> None:
    refused_before = _routed("CAPABILITY_NOT_ANNOUNCED")
    c = await stack.connect()
    try:
        await _hello(c, stack, app, "bea", calling=True)  # no messaging
        seq = await c.send(echo_request=echo_pb2.EchoRequest(text="x"))
        err = await c.expect_error(E.ERROR_CODE_CAPABILITY_NOT_ANNOUNCED, reply_to=seq)
        assert "messaging" in err.reason and err.field == "capabilities"
        assert await c.ping()  # still served
    finally:
        await c.close()
    assert all(caller.user_id != "bea" for caller, _ in echo.seen)
    assert _routed("CAPABILITY_NOT_ANNOUNCED") == refused_before + 1


async def test_no_service_running_is_a_retryable_unavailable(stack: Stack, app: App) -> None:
    c = await stack.connect()
    try:
        await _hello(c, stack, app, "cid", messaging=True)
        seq = await c.send(echo_request=echo_pb2.EchoRequest(text="x"))
        err = await c.expect_error(E.ERROR_CODE_UNAVAILABLE, reply_to=seq)
        assert "echo service is not available" in err.reason
        assert await c.ping()
    finally:
        await c.close()


async def test_a_slow_service_holds_up_no_other_frame_of_the_session(
    stack: Stack, app: App, echo: EchoHandlers
) -> None:
    c = await stack.connect()
    try:
        await _hello(c, stack, app, "dee", messaging=True)
        slow = await c.send(echo_request=echo_pb2.EchoRequest(text="slow", delay_ms=1500))
        began = time.monotonic()
        ping = await c.send(ping=client.Ping(client_time_ms=1))
        first = await c.recv()
        assert (first.WhichOneof("body"), first.reply_to) == ("pong", ping)
        assert time.monotonic() - began < 1.0
        second = await c.recv(timeout=5)
        assert (second.WhichOneof("body"), second.reply_to) == ("echo_reply", slow)
    finally:
        await c.close()


async def test_requests_in_flight_per_session_are_bounded(
    stack: Stack, app: App, echo: EchoHandlers
) -> None:
    limit = stack.gateway().settings.max_requests_in_flight
    c = await stack.connect()
    try:
        await _hello(c, stack, app, "eve", messaging=True)
        seqs = [
            await c.send(echo_request=echo_pb2.EchoRequest(text=str(i), delay_ms=800))
            for i in range(limit + 1)
        ]
        refused = await c.expect_error(E.ERROR_CODE_RATE_LIMITED, reply_to=seqs[-1])
        assert "already wait" in refused.reason
        answered = {(await c.recv(timeout=5)).reply_to for _ in range(limit)}
        assert answered == set(seqs[:-1])
    finally:
        await c.close()


async def test_a_service_error_and_a_bad_reply_reach_the_client_typed(
    stack: Stack, app: App, bus: NATS
) -> None:
    subject = bodies.route_of(echo_pb2.EchoRequest).subject

    async def answer(msg: object) -> None:
        request = routing_pb2.ClientRequest.FromString(msg.data)  # type: ignore[attr-defined]
        text = client.Envelope.FromString(request.envelope).echo_request.text
        if text == "error":
            err = ParleyError(E.ERROR_CODE_NOT_FOUND, "no such thing", "text")
            await bus.publish(
                msg.reply,  # type: ignore[attr-defined]
                err.to_proto().SerializeToString(),
                headers={"Parley-Error": "NOT_FOUND"},
            )
        else:  # a body that is not a reply
            bad = bodies.envelope_of(client.Hello(user_id="x")).SerializeToString()
            await bus.publish(msg.reply, bad)  # type: ignore[attr-defined]

    sub = await bus.subscribe(subject, queue="echo", cb=answer)
    c = await stack.connect()
    try:
        await _hello(c, stack, app, "fay", messaging=True)
        seq = await c.send(echo_request=echo_pb2.EchoRequest(text="error"))
        err = await c.expect_error(E.ERROR_CODE_NOT_FOUND, reply_to=seq)
        assert (err.reason, err.field) == ("no such thing", "text")
        seq = await c.send(echo_request=echo_pb2.EchoRequest(text="bad"))
        err = await c.expect_error(E.ERROR_CODE_INTERNAL, reply_to=seq)
        assert "no reply body" in err.reason
    finally:
        await c.close()
        await sub.unsubscribe()


async def test_a_service_refuses_a_request_that_names_no_caller(
    nats_server: EmbeddedNats, echo: EchoHandlers, bus: NATS
) -> None:
    """Only a gateway forwards client requests: one without a caller is refused."""
    route = bodies.route_of(echo_pb2.EchoRequest)
    request = routing_pb2.ClientRequest(
        envelope=bodies.envelope_of(echo_pb2.EchoRequest(text="x")).SerializeToString()
    )
    with pytest.raises(ParleyError) as info:
        await bus_request(bus, route.subject, request, client.Envelope, 2.0)
    assert info.value.code == E.ERROR_CODE_INVALID_ARGUMENT
    assert info.value.field == "caller"


async def test_device_events_reach_every_device_of_a_user_but_one_or_a_single_session(
    stack: Stack, app: App, echo: EchoHandlers, bus: NATS
) -> None:
    user = "gil"
    devices = [await stack.connect(0), await stack.connect(1), await stack.connect(1)]
    try:
        welcomes = [await _hello(c, stack, app, user, messaging=True) for c in devices]
        # The echo service tells the user's other devices (here: on both replicas).
        reply = await devices[0].request(
            echo_request=echo_pb2.EchoRequest(text="ping all", notify_other_devices=True)
        )
        assert reply.echo_reply.text == "ping all"
        for other in devices[1:]:
            event = await other.recv()
            assert event.WhichOneof("body") == "echo_event" and event.reply_to == 0
            assert event.echo_event.text == "ping all"
            assert event.echo_event.from_connection_id == welcomes[0].session_id
        # One device session, addressed by its id.
        events = DeviceEvents(bus)
        await events.to_session(
            app.key, user, welcomes[2].session_id, echo_pb2.EchoEvent(text="just you")
        )
        assert (await devices[2].recv()).echo_event.text == "just you"
        with pytest.raises(TimeoutError):
            await devices[1].ws.receive(timeout=0.3)
        # Only EVENT bodies go to devices, and only what fits a frame.
        with pytest.raises(TypeError, match="not an EVENT body"):
            await events.to_user(app.key, user, echo_pb2.EchoReply(text="x"))
        with pytest.raises(ParleyError) as info:
            await events.to_user(
                app.key, user, echo_pb2.EchoEvent(text="x" * (framing.MAX_FRAME_BYTES + 1))
            )
        assert info.value.code == E.ERROR_CODE_PAYLOAD_TOO_LARGE
    finally:
        for c in devices:
            await c.close()


async def test_a_hello_that_listens_needs_no_listen(stack: Stack, app: App, bus: NATS) -> None:
    liveness = GatewayLiveness(bus, SystemClock())
    await liveness.start()
    reader = PresenceReader(bus, liveness)
    user = "lis ten.*>"
    c = await stack.connect(1)
    try:
        welcome = await _hello(c, stack, app, user, listening=True, messaging=True)
        assert welcome.listening  # taken with the sign-in's presence write

        async def listening() -> bool:
            return await reader.listening_devices(app.key, [user]) == {user: 1}

        await eventually(listening, what="the device listening without a Listen")
        reply = await c.request(listen=client.Listen(listening=False))  # Listen still works
        assert reply.listen_accepted.listening is False
        assert await reader.listening_devices(app.key, [user]) == {user: 0}
    finally:
        await c.close()
        await liveness.stop()


async def test_any_service_reads_device_records_of_live_gateways(
    stack: Stack, app: App, bus: NATS
) -> None:
    liveness = GatewayLiveness(bus, SystemClock())
    await liveness.start()
    reader = PresenceReader(bus, liveness)
    user = "hal"
    a, b = await stack.connect(0), await stack.connect(1)
    try:
        wa = await _hello(a, stack, app, user, calling=True, managed_push=True)
        wb = await _hello(b, stack, app, user, messaging=True, active_connection=True)
        await b.request(listen=client.Listen(listening=True))

        async def both() -> bool:
            found = await reader.devices(app.key, [user, "nobody"])
            return len(found[user]) == 2 and found["nobody"] == []

        await eventually(both, what="both devices in presence")
        records = {d.connection_id: d for d in (await reader.devices(app.key, [user]))[user]}
        ra, rb = records[wa.session_id], records[wb.session_id]
        assert (ra.gateway_id, rb.gateway_id) == (wa.gateway_id, wb.gateway_id)
        assert (ra.calling, ra.messaging, ra.managed_push, ra.active_connection) == (
            True,
            False,
            True,
            False,
        )
        assert (rb.calling, rb.messaging, rb.active_connection, rb.listening) == (
            False,
            True,
            True,
            True,
        )
        assert not ra.listening and ra.user_id == user and ra.instance_id
        assert await reader.listening_devices(app.key, [user]) == {user: 1}
        assert not wa.listening and not wb.listening
        # Another application's reader sees none of them.
        assert (await reader.devices("00000000-0000-0000-0000-000000000000", [user]))[user] == []
        with pytest.raises(ParleyError) as info:
            await reader.devices(app.key, [f"u{i}" for i in range(101)])
        assert info.value.code == E.ERROR_CODE_INVALID_ARGUMENT
    finally:
        await a.close()
        await b.close()
        await liveness.stop()


def test_caller_round_trips_and_checks_capabilities() -> None:
    caller = Caller("k", "u", "i", "s", "g", "c", frozenset({options_pb2.CAPABILITY_CALLING}))
    assert Caller.from_proto(caller.to_proto()) == caller
    assert caller.has(options_pb2.CAPABILITY_CALLING)
    assert caller.has(options_pb2.CAPABILITY_NONE)
    assert not caller.has(options_pb2.CAPABILITY_MESSAGING)
