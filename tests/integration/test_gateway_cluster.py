"""Two gateways on one deployment: presence, device events and drain across them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS

from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_protocol import framing, subjects
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import client, common, presence, routing
from parley_service import runtime as rt
from tests.integration.gateway_stack import (
    App,
    RawClient,
    Stack,
    eventually,
    module_stack,
)


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> AsyncIterator[Stack]:
    async with module_stack(nats_server.url, postgres_server, "test_gwc", gateways=2) as started:
        yield started


async def _presence(c: RawClient, *user_ids: str) -> dict[str, tuple[bool, int]]:
    reply = await c.request(presence_query=presence.PresenceQuery(user_ids=list(user_ids)))
    return {u.user_id: (u.online, u.devices) for u in reply.presence_result.users}


async def test_gateways_have_their_own_ids_and_ports(stack: Stack) -> None:
    one, two = stack.gateway(0), stack.gateway(1)
    assert one.gateway_id != two.gateway_id
    assert one.port != two.port and one.port > 0 and two.port > 0


async def test_presence_is_shared_by_gateways_and_counts_listening_devices(
    stack: Stack, app: App
) -> None:
    watcher = await stack.signed_in(app, "watcher", index=1)
    assert await _presence(watcher, "kim") == {"kim": (False, 0)}

    phone = await stack.signed_in(app, "kim", index=0, listening=True)
    assert await _presence(watcher, "kim", "nobody") == {"kim": (True, 1), "nobody": (False, 0)}
    laptop = await stack.signed_in(app, "kim", index=1)  # connected, not listening
    assert await _presence(watcher, "kim") == {"kim": (True, 1)}
    await laptop.request(listen=client.Listen(listening=True))
    assert await _presence(watcher, "kim") == {"kim": (True, 2)}
    await phone.request(listen=client.Listen(listening=False))
    assert await _presence(watcher, "kim") == {"kim": (True, 1)}

    # Another application's user of the same id is not visible.
    other = await stack.create_app()
    stranger = await stack.signed_in(other, "watcher", index=0)
    assert await _presence(stranger, "kim") == {"kim": (False, 0)}

    await laptop.send(goodbye=client.Goodbye())  # forgotten at once
    await laptop.expect_close(framing.CLOSE_NORMAL)
    assert await _presence(watcher, "kim") == {"kim": (False, 0)}
    await phone.request(listen=client.Listen(listening=True))
    assert await _presence(watcher, "kim") == {"kim": (True, 1)}
    await phone.close()  # a plain close: forgotten when the gateway sees it

    async def gone() -> bool:
        return await _presence(watcher, "kim") == {"kim": (False, 0)}

    await eventually(gone)
    for c in (watcher, stranger):
        await c.close()


@pytest.mark.parametrize(
    ("user_ids", "code", "field"),
    [
        ([], ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "user_ids"),
        (["ok", "x" * 41], ErrorCode.ERROR_CODE_INVALID_USER_ID, "user_ids[1]"),
        (["tab\there"], ErrorCode.ERROR_CODE_INVALID_USER_ID, "user_ids[0]"),
        ([f"u{i}" for i in range(101)], ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "user_ids"),
    ],
)
async def test_bad_presence_queries_get_a_specific_error(
    stack: Stack, app: App, user_ids: list[str], code: int, field: str
) -> None:
    c = await stack.signed_in(app, "asker")
    seq = await c.send(presence_query=presence.PresenceQuery(user_ids=user_ids))
    error = await c.expect_error(code, reply_to=seq)
    assert error.field == field
    await c.ping()
    await c.close()


def _event(text: str, except_connection: str = "") -> bytes:
    envelope = client.Envelope(error=common.Error(code=ErrorCode.ERROR_CODE_NOT_FOUND, reason=text))
    event = routing.DeviceEvent(
        envelope=envelope.SerializeToString(), except_session_id=except_connection
    )
    data: bytes = event.SerializeToString()
    return data


async def test_device_events_reach_every_device_of_the_user_on_both_gateways(
    stack: Stack, app: App, bus: NATS
) -> None:
    one = await stack.signed_in(app, "lee", index=0)
    two = await stack.signed_in(app, "lee", index=1)
    three = await stack.signed_in(app, "lee", index=1)
    bystander = await stack.signed_in(app, "max", index=0)
    lee = subjects.device_events(app.key, "lee")
    # Two sessions of lee on gateway 1 share one subscription.
    subscribed = subjects.user_events(app.key, "lee", live=True)
    assert subscribed in stack.gateway(0).router.mux and subscribed in stack.gateway(1).router.mux

    await bus.publish(lee, _event("to all"))
    for c in (one, two, three):
        got = await c.recv()
        assert got.error.reason == "to all"
        assert got.seq == 2  # the session's own numbering: the Welcome was 1

    # To every device but one (e.g. the sender's own), and to one session only.
    await bus.publish(lee, _event("not you", two.welcome.session_id))
    await bus.publish(subjects.session_events(app.key, "lee", "nobody"), _event("lost"))
    await bus.publish(
        subjects.session_events(app.key, "lee", one.welcome.session_id), _event("direct")
    )
    # Events the gateway must not pass on: not a DeviceEvent, or a client message inside.
    await bus.publish(lee, b"\xff\xff garbage")
    hello = client.Envelope(hello=client.Hello(user_id="lee")).SerializeToString()
    await bus.publish(lee, routing.DeviceEvent(envelope=hello).SerializeToString())

    assert [(await one.recv()).error.reason for _ in range(2)] == ["not you", "direct"]
    assert (await three.recv()).error.reason == "not you"
    for c in (one, two, three, bystander):
        await c.ping()  # the next frame of each is its pong: nothing else was delivered

    # The subscription goes with the last session of the user on a gateway.
    await two.close()
    await three.close()

    async def unsubscribed() -> bool:
        return lee not in stack.gateway(1).router.mux

    await eventually(unsubscribed)
    assert subscribed in stack.gateway(0).router.mux
    await bus.publish(lee, _event("still here"))
    assert (await one.recv()).error.reason == "still here"
    for c in (one, bystander):
        await c.close()


async def test_drain_closes_sessions_with_service_restart_and_refuses_new_ones(
    stack: Stack, app: App
) -> None:
    gateway = await stack.add_gateway()
    runtime = stack.gateways.pop()
    watcher = await stack.signed_in(app, "olga", index=0)
    sessions = [await stack.signed_in(app, f"nina{i}", listening=True) for i in range(2)]
    stack.gateways.append(runtime)
    draining = [await stack.signed_in(app, "nina0", index=2, listening=True)]
    draining.append(await stack.signed_in(app, "nina9", index=2, listening=True))
    assert await _presence(watcher, "nina0", "nina9") == {"nina0": (True, 2), "nina9": (True, 1)}

    await gateway.drain()
    for c in draining:
        await c.expect_close(framing.CLOSE_SERVICE_RESTART)
    assert not gateway.sessions
    assert await _presence(watcher, "nina0", "nina9") == {"nina0": (True, 1), "nina9": (False, 0)}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await stack.connect(index=2)
    assert refused.value.status == 503
    async with stack.http.get(stack.url(2) + "/v1/connect") as resp:
        assert resp.status == 503
        assert (await resp.json(content_type=None))["code"] == "UNAVAILABLE"

    await rt.stop(stack.gateways.pop(), drain=True)
    for c in (watcher, *sessions):
        await c.ping()  # the other gateway never noticed
        await c.close()
