"""Two gateway replicas side by side: presence across them, and failover when one dies.

The last test here kills gateway-a: tests that need both replicas come before it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from parley_client import ParleyClient
from parley_protocol.pb import client as pb
from tests.support.wire import RawClient, eventually

from .stack import E2EStack, make_client


async def online(observer: ParleyClient, user: str, devices: int = 1) -> bool:
    seen = (await observer.presence([user]))[user]
    return seen.online and seen.devices == devices


async def offline(observer: ParleyClient, user: str) -> bool:
    return not (await observer.presence([user]))[user].online


async def test_clients_on_two_replicas_are_both_online_in_presence(
    stack: E2EStack, tmp_path: Path
) -> None:
    alice = make_client(stack, "alice", tmp_path / "a", gateways=["gateway-a"])
    bob = make_client(stack, "bob", tmp_path / "b", gateways=["gateway-b"])
    await alice.start()
    await bob.start()
    try:
        assert (alice.gateway_id, bob.gateway_id) == ("gateway-a", "gateway-b")
        # Started but not listening: not reachable, so not online.
        assert await offline(alice, "bob")
        await alice.start_listening_on_active_connection()
        await bob.start_listening_on_active_connection()
        await eventually(lambda: online(alice, "bob"), what="bob online as seen via gateway-a")
        await eventually(lambda: online(bob, "alice"), what="alice online as seen via gateway-b")
        assert await online(alice, "alice")
        assert await offline(alice, "nobody")

        await bob.stop_listening_on_active_connection()
        await eventually(lambda: offline(alice, "bob"), what="bob offline after he stops listening")
    finally:
        await alice.terminate()
        await bob.terminate()


async def test_a_user_online_on_two_devices_counts_both(stack: E2EStack, tmp_path: Path) -> None:
    phone = make_client(stack, "dana", tmp_path / "phone", gateways=["gateway-a"])
    tablet = make_client(stack, "dana", tmp_path / "tablet", gateways=["gateway-b"])
    for device in (phone, tablet):
        await device.start()
        await device.start_listening_on_active_connection()
    try:
        await eventually(lambda: online(phone, "dana", devices=2), what="both devices online")
        await tablet.terminate()
        await eventually(lambda: online(phone, "dana", devices=1), what="one device left")
    finally:
        await phone.terminate()
        await tablet.terminate()


@asynccontextmanager
async def mover_and_watcher(
    stack: E2EStack, tmp_path: Path, user: str
) -> AsyncIterator[tuple[ParleyClient, ParleyClient]]:
    """`user` listening on gateway-a (gateway-b its fallback), watched from gateway-b."""
    mover = make_client(stack, user, tmp_path / "m", gateways=["gateway-a", "gateway-b"])
    watcher = make_client(stack, "watcher", tmp_path / "w", gateways=["gateway-b"])
    await mover.start()
    await watcher.start()
    try:
        await mover.start_listening_on_active_connection()
        assert mover.gateway_id == "gateway-a"
        yield mover, watcher
    finally:
        await mover.terminate()
        await watcher.terminate()


async def test_killing_a_replica_moves_its_client_to_the_other(
    stack: E2EStack, tmp_path: Path
) -> None:
    async with mover_and_watcher(stack, tmp_path, "mover") as (mover, watcher):
        # A device that never comes back (its app died with the gateway).
        stranded = await RawClient.open(stack.ws("gateway-a"))
        await stranded.hello(await stack.access_token("stranded"), stack.app_key, "stranded")
        await stranded.request(listen=pb.Listen(listening=True))
        await eventually(lambda: online(watcher, "stranded"), what="stranded online")
        killed_at = time.monotonic()
        stack.kill("gateway-a")

        async def moved() -> bool:
            return mover.is_started and mover.gateway_id == "gateway-b"

        await eventually(moved, timeout=10, what="mover reconnected to gateway-b")
        took = time.monotonic() - killed_at
        assert took < 5, f"reconnect took {took:.1f} s"
        # Its listening state came along: the watcher sees it online on the survivor.
        await eventually(lambda: online(watcher, "mover"), what="mover online again")
        # The device that did not come back is offline once the survivor misses the dead
        # gateway's heartbeats: seconds, not the minute its presence entry lives on.
        gone_after = await eventually(
            lambda: offline(watcher, "stranded"), timeout=15, what="stranded offline"
        )
        assert time.monotonic() - killed_at < 30, f"took {gone_after:.1f} s after reconnects"
        await stranded.close()
