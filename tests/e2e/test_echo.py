"""The echo capability end to end: the reference client's feature, two gateway replicas and
the echo service as processes, real NATS. It is what every capability is made of: a routed
request answered with the verified caller, and an event to the user's other devices."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from parley.v1 import options_pb2
from parley_client import ErrorType, ParleyError
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from tests.support.echo.feature import EchoFeature

from .stack import ECHO, E2EStack, make_client, start_stack

USER = "echo user.*>"


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: EmbeddedNats,
    postgres_server: EmbeddedPostgres,
) -> AsyncIterator[E2EStack]:
    home = tmp_path_factory.mktemp("echo")
    db = await postgres_server.create_database(f"e2e_echo_{home.name.replace('-', '_')[:30]}")
    running = await start_stack(home, nats_server.url, db, extra=[ECHO])
    try:
        yield running
    finally:
        await running.devstack.stop()


async def test_echo_through_either_replica_reaches_the_users_other_devices(
    stack: E2EStack, tmp_path: Path
) -> None:
    phone, tablet = EchoFeature(), EchoFeature()
    on_a = make_client(stack, USER, tmp_path / "a", gateways=["gateway-a"])
    on_b = make_client(stack, USER, tmp_path / "b", gateways=["gateway-b"])
    on_a.add_feature(phone)
    on_b.add_feature(tablet)
    await on_a.start()
    await on_b.start()
    try:
        for sender, other, gateway in ((phone, tablet, "gateway-a"), (tablet, phone, "gateway-b")):
            reply = await sender.echo(
                f"via {gateway}",
                claimed_user_id="mallory",
                claimed_application_key="00000000-0000-0000-0000-000000000000",
                notify_other_devices=True,
            )
            # The service saw the caller the gateway verified, not what the body claimed.
            assert reply.text == f"via {gateway}"
            assert reply.caller.user_id == USER
            assert reply.caller.application_key == stack.app_key
            assert reply.caller.gateway_id == gateway
            assert list(reply.caller.capabilities) == [options_pb2.CAPABILITY_MESSAGING]
            event = await asyncio.wait_for(other.events.get(), 5)
            assert event.text == f"via {gateway}"
            assert event.from_connection_id == reply.caller.connection_id
        # The sender's own device was left out.
        await asyncio.sleep(0.3)
        assert phone.events.empty() and tablet.events.empty()
    finally:
        await on_a.terminate()
        await on_b.terminate()


async def test_a_capability_the_client_did_not_enable_is_refused_with_its_name(
    stack: E2EStack, tmp_path: Path
) -> None:
    echo = EchoFeature()
    client = make_client(stack, "no messaging", tmp_path)
    client.set_support_messaging(False)
    client.set_support_calling(True)
    client.add_feature(echo)
    await client.start()
    try:
        with pytest.raises(ParleyError) as caught:
            await echo.echo("hello?")
        assert caught.value.code == "CAPABILITY_NOT_ANNOUNCED"
        assert caught.value.type == ErrorType.CAPABILITY
        assert "messaging" in caught.value.message
        assert client.is_started
        assert (await client.presence(["no messaging"]))["no messaging"] is not None
    finally:
        await client.terminate()


async def test_a_blocked_feature_handler_delays_no_request_of_the_client(
    stack: E2EStack, tmp_path: Path
) -> None:
    slow = EchoFeature(block_seconds=3.0)
    listener = make_client(stack, "slow reader", tmp_path / "l")
    listener.add_feature(slow)
    sender_feature = EchoFeature()
    sender = make_client(stack, "slow reader", tmp_path / "s")
    sender.add_feature(sender_feature)
    await listener.start()
    await sender.start()
    try:
        await sender_feature.echo("first", notify_other_devices=True)
        await sender_feature.echo("second", notify_other_devices=True)
        await asyncio.sleep(0.2)  # the listener's echo handler is now blocked on "first"
        loop = asyncio.get_running_loop()
        began = loop.time()
        presence = await listener.presence(["slow reader"])
        assert loop.time() - began < 1.0
        assert presence["slow reader"] is not None
        texts = [(await asyncio.wait_for(slow.events.get(), 10)).text for _ in range(2)]
        assert texts == ["first", "second"]
    finally:
        await listener.terminate()
        await sender.terminate()
