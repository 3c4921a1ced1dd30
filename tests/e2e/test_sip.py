"""Calls to phones and SIP addresses end to end: reference clients, auth, a gateway, the calls
and sip services as processes, real NATS and PostgreSQL, real WebRTC (aiortc) between the
client and the sip service, and real SIP peers on loopback (sipp as the carrier, a pjsua2
phone)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import wave
from collections.abc import AsyncIterator
from decimal import ROUND_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from aiortc.mediastreams import MediaStreamError

from parley_client import Call, CallEndCause, CallKind, CallState, ErrorType, ParleyError
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from tests.support.calls import Party
from tests.support.media import dominant_hz, received_audio, rms
from tests.support.sip.phone_process import PhoneProcess
from tests.support.sip.sipp import Sipp, free_udp_port
from tests.support.wire import bounded, eventually

from .stack import E2EStack, running_party, running_stack, sip_def, trunk_env

TEST_NUMBER = "+46000000000"
MAX_CALL_SECONDS = 8
# Calls each sip replica of the stack holds at once.
CAPACITY = 2
# Envelope windows for comparing the prompt heard with the prompt's WAV.
WINDOW_SECONDS = 0.05

_numbers = itertools.count()


def user(name: str) -> str:
    """A fresh user ID per test holding a space, a dot, `*` and `>`."""
    return f"{name} {next(_numbers)}.x*>"


@pytest.fixture(scope="module")
def inbound_port() -> int:
    """The SIP port of the replica sip-a: calls from phones come in there."""
    return free_udp_port()


@pytest.fixture(scope="module")
def trunk_port() -> int:
    """Where the sip service's trunk is: a far phone or sipp listens there in a test."""
    return free_udp_port()


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: EmbeddedNats,
    postgres_server: EmbeddedPostgres,
    trunk_port: int,
    inbound_port: int,
) -> AsyncIterator[E2EStack]:
    # Two replicas of CAPACITY calls each, both on the same trunk.
    sip_env = {
        **trunk_env(trunk_port),
        "PARLEY_SIP_CALLER_ID": "+15550001111",
        "PARLEY_SIP_MAX_CALLS": str(CAPACITY),
        # The carriers and phones of the tests are on loopback; nothing else may be called.
        "PARLEY_SIP_ALLOWED_DOMAINS": "127.0.0.1, *.parley.test",
    }
    async with running_stack(
        tmp_path_factory.mktemp("sip"),
        nats_server.url,
        postgres_server,
        gateways=("gateway-a",),
        extra=[
            sip_def({**sip_env, "PARLEY_SIP_PORT": str(inbound_port)}, "sip-a"),
            sip_def(sip_env, "sip-b"),
        ],
        # A call is paid for at most this long: the test of a call cut when its credit
        # runs out takes seconds, not minutes.
        auth_env={"PARLEY_AUTH_CREDIT_MAX_CALL_SECONDS": str(MAX_CALL_SECONDS)},
    ) as running:
        yield running


@contextlib.asynccontextmanager
async def party(
    stack: E2EStack, name: str, state: Path, tone: float | None = None
) -> AsyncIterator[Party]:
    """A calling user with a fresh odd ID made from `name` (or `name` itself when it holds
    a space already), terminated afterwards."""
    user_id = name if " " in name else user(name)
    async with running_party(stack, user_id, state, ["gateway-a"], tone=tone) as calling:
        yield calling


async def heard_until_ended(call: Call, limit: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Everything the far side sent (first channel, floats of full scale) until the call's
    audio ends, or `limit` seconds."""
    track = call.remote_audio_track
    assert track is not None
    chunks: list[np.ndarray[Any, np.dtype[np.float64]]] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while loop.time() < end and call.state is not CallState.ENDED:
        try:
            frame = await asyncio.wait_for(track.recv(), 1)
        except (MediaStreamError, TimeoutError):
            break
        samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
        chunks.append(samples.astype(np.float64) / 32768)
    return np.concatenate(chunks) if chunks else np.zeros(0)


def envelope(samples: np.ndarray[Any, np.dtype[np.float64]], rate: int) -> np.ndarray[Any, Any]:
    size = int(rate * WINDOW_SECONDS)
    count = len(samples) // size
    return np.sqrt(np.mean(samples[: count * size].reshape(count, size) ** 2, axis=1))


def prompt_envelope() -> np.ndarray[Any, Any]:
    prompts = resources.files("parley_sip.prompts")
    with prompts.joinpath("connected.wav").open("rb") as f, wave.open(f) as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2") / 32768
    return envelope(samples.astype(np.float64), rate)


def best_correlation(heard: np.ndarray[Any, Any], expected: np.ndarray[Any, Any]) -> float:
    """The highest normalised correlation of `expected` against `heard` at any lag."""
    if len(heard) < len(expected):
        return 0.0
    e = (expected - expected.mean()) / (expected.std() or 1)
    best = -1.0
    for lag in range(len(heard) - len(expected) + 1):
        h = heard[lag : lag + len(expected)]
        std = h.std()
        if std == 0:
            continue
        best = max(best, float(np.mean(e * (h - h.mean()) / std)))
    return best


@bounded(60)
async def test_the_test_number_plays_the_prompt_and_hangs_up(
    stack: E2EStack, tmp_path: Path
) -> None:
    async with party(stack, "alice", tmp_path / "a", tone=440) as alice:
        call = alice.calls.call_phone_number(TEST_NUMBER)
        events = alice.follow(call)
        assert call.kind is CallKind.PHONE and call.remote_user_id == TEST_NUMBER
        await call.wait_established(15)
        heard = await heard_until_ended(call, 20)
        details = await call.wait_ended(10)
        assert details.end_cause is CallEndCause.HUNG_UP, details
        assert events.heard[0] == "progressing" and events.heard[-1] == "ended:HUNG_UP"
        expected = prompt_envelope()
        got = envelope(heard, 48_000)
        score = best_correlation(got, expected)
        print(
            f"\nheard {len(heard) / 48_000:.2f} s of audio for a prompt of "
            f"{len(expected) * WINDOW_SECONDS:.2f} s; envelope correlation {score:.3f}"
        )
        assert score > 0.8
        assert details.duration >= len(expected) * WINDOW_SECONDS


@bounded(30)
async def test_numbers_and_sip_addresses_are_checked_before_anything_is_sent(
    stack: E2EStack, tmp_path: Path
) -> None:
    async with party(stack, "alice", tmp_path / "a") as alice:
        for number in ("4155550101", "+1 415 555 0101", "+12", "+1415555010199999"):
            with pytest.raises(ParleyError) as caught:
                alice.calls.call_phone_number(number)
            assert caught.value.code == "INVALID_PHONE_NUMBER", number
        for address in ("bob", "bob@", "@server", "bob@server@x", "bob smith@server"):
            with pytest.raises(ParleyError) as caught:
                alice.calls.call_sip(address)
            assert caught.value.code == "INVALID_ARGUMENT", address
        for headers in ({"foo": "bar"}, {"x-": "1"}, {"x-a b": "1"}, {"x-ok": "line\r\nbreak"}):
            with pytest.raises(ParleyError) as caught:
                alice.calls.call_sip("bob@127.0.0.1", headers)
            assert caught.value.code == "INVALID_HEADER", headers
            assert caught.value.type is ErrorType.OTHER
        assert alice.calls.calls == []


@bounded(60)
async def test_a_sip_call_carries_x_headers_echoes_audio_and_ends_with_a_bye(
    stack: E2EStack, tmp_path: Path
) -> None:
    async with party(stack, "alice", tmp_path / "a", tone=440) as alice:
        async with Sipp("uas_check_headers", tmp_path / "sipp") as carrier:
            call = alice.calls.call_sip(f"bob@{carrier.address}", {"x-foo": "bar"})
            events = alice.follow(call)
            assert call.kind is CallKind.SIP
            await call.wait_established(15)
            # sipp echoes the RTP it gets: the client hears its own tone through PCMU.
            await received_audio(call, 0.5)
            heard = await received_audio(call, 1.0)
            hz, level = dominant_hz(heard), rms(heard)
            print(f"\nthe echo through the SIP leg: {hz:.1f} Hz at rms {level:.3f}")
            assert abs(hz - 440) <= 10 and level > 0.02
            await call.hangup()
            details = await call.wait_ended(5)
            assert details.end_cause is CallEndCause.HUNG_UP and details.error is None
            result = await carrier.wait(10)
        assert result.ok, result.errors
        assert "x-foo: bar" in result.messages.lower()
        assert events.heard[:2] == ["progressing", "established"]


@bounded(60)
@pytest.mark.parametrize(
    ("scenario", "status", "cause"),
    [
        ("uas_busy", 486, CallEndCause.DENIED),
        ("uas_not_found", 404, CallEndCause.FAILURE),
        ("uas_unavailable", 503, CallEndCause.FAILURE),
    ],
)
async def test_sip_errors_end_the_call_with_the_status_in_an_error_of_type_sip(
    stack: E2EStack, tmp_path: Path, scenario: str, status: int, cause: CallEndCause
) -> None:
    async with party(stack, "alice", tmp_path / "a") as alice:
        async with Sipp(scenario, tmp_path / "sipp") as carrier:
            call = alice.calls.call_sip(f"bob@{carrier.address}")
            details = await call.wait_ended(15)
            await carrier.wait(10)
        error = details.error
        print(f"\n{scenario}: {details.end_cause}, {error!r}")
        assert details.end_cause is cause
        assert error is not None and error.type is ErrorType.SIP and error.code == "SIP"
        assert error.sip_status == status and error.message.startswith(str(status))


@bounded(30)
async def test_a_sip_address_at_a_host_the_deployment_does_not_allow_is_refused_before_dialling(
    stack: E2EStack, tmp_path: Path
) -> None:
    async with party(stack, "alice", tmp_path / "a") as alice:
        for address in ("bob@192.0.2.10", "bob@sip.elsewhere.example:5060", "bob@parley.test"):
            call = alice.calls.call_sip(address)
            details = await call.wait_ended(10)
            error = details.error
            print(f"\n{address}: {details.end_cause}, {error!r}")
            assert details.end_cause is CallEndCause.FAILURE and error is not None, address
            assert error.code == "PERMISSION_DENIED", address
            host = address.partition("@")[2].partition(":")[0]
            assert error.message == f"this deployment does not call SIP addresses at {host}"
        # Hosts under an allowed wildcard get as far as the SIP stack: nothing answers there
        # (no name service here), so the call fails, but not for being refused.
        call = alice.calls.call_sip("bob@sip.parley.test")
        details = await call.wait_ended(40)
        print(f"bob@sip.parley.test: {details.end_cause}, {details.error!r}")
        assert details.error is not None and details.error.code != "PERMISSION_DENIED"


async def ledger(stack: E2EStack) -> dict[str, Any]:
    shown = await stack.admin("credits-show", stack.app_key, "--json")
    assert shown is not None
    return shown


@bounded(90)
async def test_a_phone_call_through_the_trunk_carries_audio_and_dtmf_and_is_charged_per_second(
    stack: E2EStack, tmp_path: Path, trunk_port: int
) -> None:
    await stack.admin("rates-set", "+1415", "1.20", "--description", "San Francisco")
    await stack.admin("credits-topup", stack.app_key, "5.00")
    phone = PhoneProcess(
        "--answer",
        "--port",
        str(trunk_port),
        "--tone",
        "1000",
        "--warmup",
        "1.5",
        "--listen",
        "1.5",
        "--send-dtmf",
        "45*",
        "--expect-dtmf",
        "3",
        "--hangup",
        "--timeout",
        "30",
    )
    async with party(stack, "alice", tmp_path / "a", tone=440) as alice:
        async with phone:
            call = alice.calls.call_phone_number("+14155550101")
            events = alice.follow(call)
            await call.wait_established(15)
            await received_audio(call, 0.3)
            heard = await received_audio(call, 1.0)
            call.send_dtmf("12#")
            report = await phone.result(30)
            details = await call.wait_ended(10)
        hz, level = dominant_hz(heard), rms(heard)
        print(
            f"\nthe client hears the phone at {hz:.1f} Hz (rms {level:.3f}); the phone "
            f"hears {report['freq']} Hz over {report['codec']}, digits {report['digits']!r}"
        )
        assert abs(hz - 1000) <= 15 and level > 0.02
        assert abs(report["freq"] - 440) <= 15 and report["digits"] == "12#"
        assert "dtmf:45*" in "".join(events.heard) or [
            e for e in events.heard if e.startswith("dtmf:")
        ] == ["dtmf:4", "dtmf:5", "dtmf:*"]
        assert details.end_cause is CallEndCause.HUNG_UP, details
        entry = (await ledger(stack))["entries"][0]
        print(f"ledger: {entry}")
        assert (entry["kind"], entry["number"], entry["rate_per_minute"]) == (
            "call",
            "+14155550101",
            "1.20",
        )
        seconds = entry["duration_seconds"]
        assert abs(seconds - details.duration) <= 2, (seconds, details.duration)
        assert Decimal(entry["amount"]) == -(Decimal(seconds) * Decimal("1.20") / 60).quantize(
            Decimal("0.000001"), rounding=ROUND_UP
        )


@bounded(60)
async def test_a_call_the_balance_cannot_pay_a_minute_of_is_refused_before_dialling(
    stack: E2EStack, tmp_path: Path, trunk_port: int
) -> None:
    await stack.admin("rates-set", "+44", "100000.00")
    async with party(stack, "alice", tmp_path / "a") as alice:
        async with Sipp("uas_answer", tmp_path / "sipp", port=trunk_port) as carrier:
            call = alice.calls.call_phone_number("+442079460000")
            details = await call.wait_ended(10)
            assert carrier.running  # nothing was dialled: sipp still waits for its call
        error = details.error
        print(f"\n{details.end_cause}: {error!r}")
        assert details.end_cause is CallEndCause.FAILURE and error is not None
        assert error.code == "INSUFFICIENT_CREDIT" and "not enough credit" in error.message
        unrated = alice.calls.call_phone_number("+8613800000000")  # no rate for +86
        details = await unrated.wait_ended(10)
        assert details.error is not None and details.error.code == "NOT_FOUND"


@bounded(60)
async def test_a_call_is_cut_when_its_reserved_credit_runs_out(
    stack: E2EStack, tmp_path: Path, trunk_port: int
) -> None:
    await stack.admin("rates-set", "+1212", "0.60")
    await stack.admin("credits-topup", stack.app_key, "1.00")
    async with party(stack, "alice", tmp_path / "a", tone=440) as alice:
        async with Sipp("uas_answer", tmp_path / "sipp", port=trunk_port) as carrier:
            call = alice.calls.call_phone_number("+12125550100")
            await call.wait_established(15)
            details = await call.wait_ended(MAX_CALL_SECONDS + 10)
            result = await carrier.wait(10)
        print(f"\ncut after {details.duration:.1f} s: {details.error!r}")
        assert details.end_cause is CallEndCause.FAILURE and details.error is not None
        assert details.error.code == "INSUFFICIENT_CREDIT"
        assert MAX_CALL_SECONDS - 1 <= details.duration <= MAX_CALL_SECONDS + 2
        assert result.ok, result.errors  # the carrier got its BYE
        entry = (await ledger(stack))["entries"][0]
        assert entry["number"] == "+12125550100"
        assert MAX_CALL_SECONDS <= entry["duration_seconds"] <= MAX_CALL_SECONDS + 1


@bounded(60)
async def test_a_full_replica_leaves_its_dials_to_the_other_until_both_are_full(
    stack: E2EStack, tmp_path: Path
) -> None:
    async with party(stack, "alice", tmp_path / "a") as alice:
        calls = [alice.calls.call_phone_number(TEST_NUMBER) for _ in range(2 * CAPACITY)]
        await asyncio.gather(*(call.wait_established(15) for call in calls))
        # Both replicas are full: nobody listens for dials until a call ends.
        refused = alice.calls.call_phone_number(TEST_NUMBER)
        details = await refused.wait_ended(10)
        print(f"\n{2 * CAPACITY} calls held; one more: {details.error!r}")
        assert details.end_cause is CallEndCause.FAILURE and details.error is not None
        assert details.error.code == "UNAVAILABLE"
        await calls[0].hangup()
        again = alice.calls.call_phone_number(TEST_NUMBER)
        await again.wait_established(15)
        for call in [*calls[1:], again]:
            await call.hangup()


@bounded(60)
async def test_a_phone_calling_a_mapped_number_rings_the_user_who_answers_and_talks(
    stack: E2EStack, tmp_path: Path, inbound_port: int
) -> None:
    bob_id = user("bob")
    await stack.admin("numbers-set", "+14155550123", stack.app_key, bob_id)
    phone = PhoneProcess(
        "--dial",
        f"sip:+14155550123@127.0.0.1:{inbound_port}",
        "--tone",
        "1000",
        "--warmup",
        "1.5",
        "--listen",
        "1.5",
        "--send-dtmf",
        "9",
        "--hangup",
        "--timeout",
        "30",
    )
    async with party(stack, bob_id, tmp_path / "b", tone=440) as bob:
        async with phone:
            incoming = await bob.next_incoming(timeout=10)
            assert incoming.kind is CallKind.PHONE and incoming.remote_user_id == "phone"
            await incoming.answer()
            await incoming.wait_established(10)
            await received_audio(incoming, 0.3)
            heard = await received_audio(incoming, 1.0)
            report = await phone.result(30)
        details = await incoming.wait_ended(10)
        hz = dominant_hz(heard)
        print(f"\nbob hears the phone at {hz:.1f} Hz; the phone hears {report['freq']} Hz")
        assert abs(hz - 1000) <= 15 and abs(report["freq"] - 440) <= 15
        assert details.end_cause is CallEndCause.HUNG_UP
        assert "dtmf:9" in bob.heard(incoming)


@bounded(60)
async def test_an_inbound_invite_from_sipp_reaches_the_user_and_unmapped_numbers_are_refused(
    stack: E2EStack, tmp_path: Path, inbound_port: int
) -> None:
    carol_id = user("carol")
    await stack.admin("numbers-set", "+14155550124", stack.app_key, carol_id)
    async with party(stack, carol_id, tmp_path / "c") as carol:
        async with Sipp(
            "uac_invite",
            tmp_path / "sipp",
            remote=f"127.0.0.1:{inbound_port}",
            service="+14155550124",
            duration_ms=1500,
        ) as carrier:
            incoming = await carol.next_incoming(timeout=10)
            assert incoming.remote_user_id == "+15550100"
            assert incoming.headers == {"x-parley-test": "inbound"}
            await incoming.answer()
            details = await incoming.wait_ended(15)
            result = await carrier.wait(15)
        assert result.ok, result.errors
        assert details.end_cause is CallEndCause.HUNG_UP
        async with Sipp(
            "uac_invite",
            tmp_path / "sipp-unmapped",
            remote=f"127.0.0.1:{inbound_port}",
            service="+14155550199",
        ) as carrier:
            result = await carrier.wait(15)
        assert not result.ok and "404" in result.messages


@bounded(90)
async def test_a_stopped_replica_lets_its_live_call_finish_and_new_calls_go_elsewhere(
    stack: E2EStack, tmp_path: Path
) -> None:
    """Last in this module: one of the two sip replicas is gone afterwards."""
    supervisor = stack.devstack.supervisor
    async with party(stack, "alice", tmp_path / "a", tone=440) as alice:
        async with Sipp("uas_answer", tmp_path / "sipp") as carrier:
            call = alice.calls.call_sip(f"bob@{carrier.address}")
            await call.wait_established(15)
            holder = next(
                name
                for name in ("sip-a", "sip-b")
                if any(call.call_id in line for line in supervisor.status(name).recent_output)
            )
            other = "sip-b" if holder == "sip-a" else "sip-a"
            assert supervisor.kill(holder, signal.SIGTERM)
            await asyncio.sleep(1.5)
            # The call goes on: the echo of alice's tone still comes back ...
            heard = await received_audio(call, 1.0)
            assert abs(dominant_hz(heard) - 440) <= 10 and rms(heard) > 0.02
            assert supervisor.status(holder).running and call.state is CallState.ESTABLISHED
            # ... while new calls go to the other replica.
            test_call = alice.calls.call_phone_number(TEST_NUMBER)
            await test_call.wait_established(15)
            assert any(test_call.call_id in line for line in supervisor.status(other).recent_output)
            await test_call.hangup()
            await call.hangup()
            assert (await call.wait_ended(5)).end_cause is CallEndCause.HUNG_UP
            assert (await carrier.wait(10)).ok

        async def exited() -> bool:
            return not supervisor.status(holder).running

        await eventually(exited, timeout=15, what=f"{holder} exited once its call ended")
        status = supervisor.status(holder)
        assert status.last_exit_code == 0, status.recent_output[-10:]
