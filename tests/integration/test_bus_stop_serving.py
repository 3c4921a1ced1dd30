"""A service that stops serving (full, or shutting down) still answers the requests the
server had already sent it: none is dropped for its caller to wait out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest_asyncio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from parley.v1 import echo_pb2
from parley_devstack.nats import EmbeddedNats
from parley_service.bus import SUB_DRAIN_SECONDS, Bus

REQUESTS = 500
SUBJECT = "parley.test.stop_serving"


@pytest_asyncio.fixture
async def service_nc(nats_server: EmbeddedNats) -> AsyncIterator[NATS]:
    nc = await nats.connect(nats_server.url)
    yield nc
    await nc.close()


async def finds_no_responder(nc: NATS, otherwise: str) -> None:
    """A request now finds no responder (else fail with `otherwise`)."""
    try:
        await nc.request(SUBJECT, echo_pb2.EchoRequest(text="late").SerializeToString(), 1)
    except nats.errors.NoRespondersError:
        return
    raise AssertionError(otherwise)


async def test_requests_already_sent_to_a_replica_that_stops_serving_are_answered(
    service_nc: NATS, bus: NATS
) -> None:
    async def echo(request: echo_pb2.EchoRequest) -> echo_pb2.EchoReply:
        return echo_pb2.EchoReply(text=request.text)

    service = Bus(service_nc, "test")
    service.endpoint(SUBJECT, echo_pb2.EchoRequest, echo, "test")
    await service.serve()

    answered: set[str] = set()
    all_answered = asyncio.Event()

    async def on_reply(msg: Msg) -> None:
        answered.add(echo_pb2.EchoReply.FromString(msg.data).text)
        if len(answered) == REQUESTS:
            all_answered.set()

    inbox = bus.new_inbox()
    await bus.subscribe(inbox + ".*", cb=on_reply)
    for n in range(REQUESTS):
        request = echo_pb2.EchoRequest(text=str(n))
        await bus.publish(SUBJECT, request.SerializeToString(), reply=f"{inbox}.{n}")
    await bus.flush()  # the server has routed every request to the service's connection
    await service.stop_serving()  # before the service's connection read them

    try:
        await asyncio.wait_for(all_answered.wait(), 10)
    except TimeoutError:
        raise AssertionError(f"{REQUESTS - len(answered)} of {REQUESTS} requests dropped") from None
    # And it takes no new ones.
    await finds_no_responder(bus, "a request was served after stop_serving")


async def test_a_replica_that_stops_serving_while_nats_is_away_stays_stopped(
    own_nats: EmbeddedNats,
) -> None:
    """With NATS away the drain cannot be confirmed: stop_serving returns anyway, and when
    NATS is back the service is not subscribed again."""

    async def echo(request: echo_pb2.EchoRequest) -> echo_pb2.EchoReply:
        return echo_pb2.EchoReply(text=request.text)

    service_nc = await nats.connect(
        own_nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    caller = await nats.connect(own_nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        service = Bus(service_nc, "test")
        service.endpoint(SUBJECT, echo_pb2.EchoRequest, echo, "test")
        await service.serve()
        reply = await caller.request(
            SUBJECT, echo_pb2.EchoRequest(text="up").SerializeToString(), 2
        )
        assert echo_pb2.EchoReply.FromString(reply.data).text == "up"

        await own_nats.stop()
        await asyncio.wait_for(service.stop_serving(), SUB_DRAIN_SECONDS + 3)
        await own_nats.start()
        while not (service_nc.is_connected and caller.is_connected):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        await service_nc.flush()  # anything it would subscribe again is on the server now
        await finds_no_responder(
            caller, "the stopped service was subscribed again after the reconnect"
        )
    finally:
        await caller.close()
        await service_nc.close()
