"""Load limits of the gateway: frames per session (a token bucket) and connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_gateway.ws import MAX_REFUSED_FRAMES
from parley_protocol import framing
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import client
from parley_service import runtime as rt
from tests.integration.gateway_stack import App, RawClient, Stack, eventually, module_stack

E = ErrorCode
BURST = 50  # GatewaySettings defaults: 50 frames at once, 20 a second
RATE = 20.0


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> AsyncIterator[Stack]:
    async with module_stack(nats_server.url, postgres_server, "test_gwl") as started:
        assert started.gateway().settings.session_frame_burst == BURST
        assert started.gateway().settings.session_frame_rate == RATE
        yield started


async def _pings(c: RawClient, count: int) -> list[int]:
    return [await c.send(ping=client.Ping()) for _ in range(count)]


async def test_frames_over_the_rate_are_refused_until_the_bucket_refills(
    stack: Stack, app: App
) -> None:
    c = await stack.signed_in(app, "eager")  # the Hello took one token
    seqs = await _pings(c, BURST + 20)
    replies = [await c.recv() for _ in seqs]
    assert [r.reply_to for r in replies] == seqs  # every frame answered, in order
    refused = [r for r in replies if r.WhichOneof("body") == "error"]
    assert 10 <= len(refused) <= 21, replies  # 20-21, less what refilled while sending
    assert {r.error.code for r in refused} == {E.ERROR_CODE_RATE_LIMITED}
    assert "frames a second" in refused[0].error.reason
    assert all(r.WhichOneof("body") == "pong" for r in replies[: BURST - 2])

    await asyncio.sleep(3 / RATE)  # three tokens back: the session goes on
    for _ in range(3):
        await c.ping()
    await c.close()


async def test_a_session_that_keeps_over_the_rate_is_closed(stack: Stack, app: App) -> None:
    c = await stack.signed_in(app, "flooder")
    seqs = await _pings(c, BURST + MAX_REFUSED_FRAMES + 10)
    kinds: dict[str, int] = {}
    while True:
        msg = await c.ws.receive(5)
        if msg.type != aiohttp.WSMsgType.BINARY:
            break
        reply = client.Envelope.FromString(msg.data)
        assert reply.reply_to in seqs
        body = reply.WhichOneof("body") or ""
        kinds[body] = kinds.get(body, 0) + 1
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == framing.CLOSE_RATE_LIMITED, msg
    assert kinds["error"] == MAX_REFUSED_FRAMES
    assert BURST - 1 <= kinds["pong"] <= BURST + 10, kinds  # plus what refilled meanwhile
    other = await stack.signed_in(app, "flooder")  # a new session starts afresh
    await other.ping()
    await other.close()


async def test_connections_over_the_limit_get_503_before_the_upgrade(stack: Stack) -> None:
    gateway = await stack.add_gateway(max_connections=2)
    runtime = stack.gateways[-1]
    try:
        index = len(stack.gateways) - 1
        first, second = await stack.connect(index), await stack.connect(index)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await stack.connect(index)
        assert refused.value.status == 503
        async with stack.http.get(gateway.url + "/v1/connect") as resp:
            assert resp.status == 503
            problem = await resp.json(content_type=None)
        assert problem["code"] == "UNAVAILABLE" and "limit of 2 connections" in problem["detail"]

        await first.close()

        async def room() -> bool:
            return len(gateway.sessions) < 2

        await eventually(room, what="the closed connection forgotten")
        third = await stack.connect(index)
        await second.close()
        await third.close()
    finally:
        stack.gateways.remove(runtime)
        await rt.stop(runtime, drain=False)
