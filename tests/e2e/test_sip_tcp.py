"""Calls to phones and SIP addresses over SIP on TCP: a sip replica whose user agent and
trunk use TCP, sipp as the carrier on TCP (reference clients, auth, a gateway, the calls and
sip services as processes, real NATS and PostgreSQL, real WebRTC)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from parley_client import Call, CallEndCause
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from tests.support.media import dominant_hz, received_audio, rms
from tests.support.sip.sipp import Sipp, free_udp_port
from tests.support.wire import bounded

from .stack import E2EStack, running_party, running_stack, sip_def, trunk_env


@pytest.fixture(scope="module")
def trunk_port() -> int:
    return free_udp_port()  # free for TCP too


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: EmbeddedNats,
    postgres_server: EmbeddedPostgres,
    trunk_port: int,
) -> AsyncIterator[E2EStack]:
    env = {
        **trunk_env(trunk_port),
        "PARLEY_SIP_TRANSPORT": "tcp",
        "PARLEY_SIP_TRUNK_TRANSPORT": "tcp",
        "PARLEY_SIP_CALLER_ID": "+15550001111",
        "PARLEY_SIP_CALLER_ID_RULES": "+44=+442079460999",
    }
    async with running_stack(
        tmp_path_factory.mktemp("sip-tcp"),
        nats_server.url,
        postgres_server,
        gateways=("gateway-a",),
        extra=[sip_def(env)],
    ) as running:
        yield running


async def talk_and_hang_up(call: Call, carrier: Sipp) -> str:
    """The call is set up, the client hears its own tone echoed by sipp, and hangs up; the
    SIP messages sipp saw."""
    await call.wait_established(15)
    await received_audio(call, 0.5)
    heard = await received_audio(call, 1.0)
    hz, level = dominant_hz(heard), rms(heard)
    print(f"\nthe echo over SIP on TCP: {hz:.1f} Hz at rms {level:.3f}")
    assert abs(hz - 440) <= 10 and level > 0.02
    await call.hangup()
    details = await call.wait_ended(5)
    assert details.end_cause is CallEndCause.HUNG_UP and details.error is None
    result = await carrier.wait(10)
    assert result.ok, result.errors  # sipp got its BYE, on TCP
    return result.messages


def caller_id(messages: str) -> str:
    """The user part of the From header of the INVITE sipp received."""
    invite = messages[messages.index("INVITE sip:") :]
    found = re.search(r"^(?:From|f):[^\n]*<sips?:([^@>]+)@", invite, re.MULTILINE | re.IGNORECASE)
    assert found, invite[:600]
    return found.group(1)


@bounded(60)
async def test_phone_calls_go_through_a_trunk_on_tcp_with_the_caller_id_of_their_rule(
    stack: E2EStack, tmp_path: Path, trunk_port: int
) -> None:
    await stack.admin("rates-set", "+1415", "0.60")
    await stack.admin("rates-set", "+44", "0.60")
    await stack.admin("credits-topup", stack.app_key, "5.00")
    async with running_party(
        stack, "alice smith.x*>", tmp_path / "a", ["gateway-a"], tone=440
    ) as alice:
        # No rule for +1: the default caller ID; the rule for +44 names another.
        for number, presented in (
            ("+14155550101", "+15550001111"),
            ("+442079460000", "+442079460999"),
        ):
            async with Sipp(
                "uas_answer", tmp_path / "sipp", port=trunk_port, transport="tcp"
            ) as carrier:
                messages = await talk_and_hang_up(alice.calls.call_phone_number(number), carrier)
            print(f"{number}: caller ID {caller_id(messages)}")
            assert caller_id(messages) == presented


@bounded(60)
async def test_a_sip_address_is_called_on_tcp_when_the_user_agent_uses_tcp(
    stack: E2EStack, tmp_path: Path
) -> None:
    async with (
        running_party(stack, "alice jones.y*>", tmp_path / "a", ["gateway-a"], tone=440) as alice,
        Sipp("uas_answer", tmp_path / "sipp", transport="tcp") as carrier,
    ):
        await talk_and_hang_up(alice.calls.call_sip(f"bob@{carrier.address}"), carrier)
