"""Two gateway replicas side by side: presence across them, and failover when one dies."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from .stack import E2EStack
from .test_registration import make_client


async def test_clients_on_two_replicas_are_both_online_in_presence(
    stack: E2EStack, tmp_path: Path
) -> None:
    alice = make_client(stack, "alice", tmp_path / "a", gateways=["gateway-a"])
    bob = make_client(stack, "bob", tmp_path / "b", gateways=["gateway-b"])
    await alice.start()
    await bob.start()
    try:
        assert (alice.gateway_id, bob.gateway_id) == ("gateway-a", "gateway-b")
        alice.start_listening_on_active_connection()
        bob.start_listening_on_active_connection()
        deadline = time.monotonic() + 5
        while True:
            seen_by_alice = await alice.presence(["alice", "bob", "nobody"])
            seen_by_bob = await bob.presence(["alice", "bob"])
            both = seen_by_alice["alice"].online and seen_by_alice["bob"].online
            if both and seen_by_bob["alice"].online or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert seen_by_alice["alice"].online and seen_by_alice["alice"].devices == 1
        assert seen_by_alice["bob"].online and seen_by_alice["bob"].devices == 1
        assert not seen_by_alice["nobody"].online
        assert seen_by_bob["alice"].online

        bob.stop_listening_on_active_connection()
        deadline = time.monotonic() + 5
        while (await alice.presence(["bob"]))["bob"].online and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not (await alice.presence(["bob"]))["bob"].online
    finally:
        await alice.terminate()
        await bob.terminate()


async def test_killing_a_replica_moves_its_client_to_the_other(
    stack: E2EStack, tmp_path: Path
) -> None:
    mover = make_client(stack, "mover", tmp_path / "m", gateways=["gateway-a", "gateway-b"])
    watcher = make_client(stack, "watcher", tmp_path / "w", gateways=["gateway-b"])
    await mover.start()
    await watcher.start()
    try:
        mover.start_listening_on_active_connection()
        assert mover.gateway_id == "gateway-a"
        killed_at = time.monotonic()
        stack.kill("gateway-a")
        await asyncio.sleep(0.1)
        await mover.wait_connected(timeout=10)
        took = time.monotonic() - killed_at
        assert mover.gateway_id == "gateway-b"
        assert took < 5, f"reconnect took {took:.1f} s"
        # Its listening state came along: the watcher sees it online on the survivor.
        deadline = time.monotonic() + 5
        while not (await watcher.presence(["mover"]))["mover"].online:
            assert time.monotonic() < deadline, "mover never came back online"
            await asyncio.sleep(0.1)
    finally:
        await mover.terminate()
        await watcher.terminate()
