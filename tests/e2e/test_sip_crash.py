"""A sip process that dies mid-call (SIGKILL) neither loses the call's charge nor charges it
twice: its credit reservation, renewed by the process while the call ran, runs out, and
auth's sweeper settles it for the time the call was known to last."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from tests.support.sip.sipp import Sipp, free_udp_port
from tests.support.wire import bounded, eventually

from .stack import E2EStack, calling_party, running_stack, sip_def, trunk_env

LEASE_SECONDS = 3


@pytest.fixture(scope="module")
def trunk_port() -> int:
    return free_udp_port()


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: EmbeddedNats,
    postgres_server: EmbeddedPostgres,
    trunk_port: int,
) -> AsyncIterator[E2EStack]:
    async with running_stack(
        tmp_path_factory.mktemp("sipcrash"),
        nats_server.url,
        postgres_server,
        gateways=("gateway-a",),
        extra=[sip_def(trunk_env(trunk_port))],
        auth_env={
            "PARLEY_AUTH_CREDIT_LEASE_SECONDS": str(LEASE_SECONDS),
            "PARLEY_AUTH_CREDIT_SWEEP_SECONDS": "0.5",
        },
    ) as running:
        yield running


@bounded(60)
async def test_a_killed_sip_process_is_charged_for_the_time_its_call_was_known_to_last(
    stack: E2EStack, tmp_path: Path, trunk_port: int
) -> None:
    await stack.admin("rates-set", "+1", "0.60")
    await stack.admin("credits-topup", stack.app_key, "10.00")
    alice = await calling_party(
        stack, "alice crash.x*>", tmp_path / "a", ["gateway-a"], tone=440, inactive=2
    )
    try:
        async with Sipp("uas_answer", tmp_path / "sipp", port=trunk_port):
            call = alice.calls.call_phone_number("+14155550101")
            await call.wait_established(15)
            await asyncio.sleep(3.5)  # touched three times: known to have lasted 3 s
            assert stack.devstack.supervisor.kill("sip", signal.SIGKILL)
            details = await call.wait_ended(15)  # the client hears no media any more
            print(f"\nthe call ended {details.end_cause} after {details.duration:.1f} s")

            async def charged() -> bool:
                shown = await stack.admin("credits-show", stack.app_key, "--json")
                assert shown is not None
                return shown["held"] == "0.00" and any(
                    e["call_id"] == call.call_id for e in shown["entries"]
                )

            await eventually(charged, timeout=LEASE_SECONDS + 10, what="the sweeper's charge")
        shown = await stack.admin("credits-show", stack.app_key, "--json")
        assert shown is not None
        entries = [e for e in shown["entries"] if e["call_id"] == call.call_id]
        print(f"ledger: {entries}")
        assert len(entries) == 1  # charged once
        assert 3 <= entries[0]["duration_seconds"] <= 5
        assert entries[0]["kind"] == "call" and entries[0]["number"] == "+14155550101"
    finally:
        await alice.client.terminate()
