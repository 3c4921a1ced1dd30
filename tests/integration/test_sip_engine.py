"""The SIP engine against real SIP peers on loopback: sipp as the carrier and a pjsua2
phone in its own process (the engine runs in the test process)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from parley_devstack.ports import free_port
from parley_sip.engine import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    EngineConfig,
    IncomingInvite,
    SipEnd,
    SipEngine,
    SipError,
    SipLeg,
)
from tests.support.sip.phone_process import PhoneProcess
from tests.support.sip.sipp import Sipp


@pytest_asyncio.fixture
async def engine() -> AsyncIterator[SipEngine]:
    engine = SipEngine(EngineConfig())
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


class Tone:
    """Consecutive 20 ms frames of a sine at 48 kHz."""

    def __init__(self, freq: float, amplitude: float = 8000.0) -> None:
        self.freq = freq
        self.amplitude = amplitude
        self.pos = 0

    def frame(self) -> bytes:
        t = (np.arange(FRAME_SAMPLES) + self.pos) / SAMPLE_RATE
        self.pos += FRAME_SAMPLES
        return (np.sin(2 * np.pi * self.freq * t) * self.amplitude).astype("<i2").tobytes()


def analyse(frames: list[bytes]) -> tuple[float, float]:
    """Dominant frequency (Hz) and RMS of 48 kHz frames."""
    pcm = np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum)) * SAMPLE_RATE / pcm.size, float(np.sqrt(np.mean(pcm**2)))


async def talk(leg: SipLeg, tone: Tone, frames: int | None = None) -> list[bytes]:
    """Write the tone paced by the frames read (the media clock) until ``frames`` were
    read or the leg ended; what was heard."""
    heard: list[bytes] = []
    try:
        while frames is None or len(heard) < frames:
            heard.append(await leg.read_audio())
            leg.write_audio(tone.frame())
    except EOFError:
        pass
    return heard


async def test_dial_sends_headers_progresses_and_answers(engine: SipEngine, tmp_path: Path) -> None:
    async with Sipp("uas_check_headers", tmp_path) as sipp:
        leg = await engine.dial(sipp.uri("+14155550101"), headers={"x-foo": "bar"})
        await asyncio.wait_for(leg.progressing.wait(), 5)
        await asyncio.wait_for(leg.answered.wait(), 5)
        assert leg.codec == "PCMU/8000"
        assert engine.live_legs == 1
        await leg.hangup()
        end = await asyncio.wait_for(leg.wait_ended(), 5)
        assert end == SipEnd(200, end.reason, by_remote=False)
        result = await sipp.wait(10)
        assert result.ok, result.errors
        assert "x-foo: bar" in result.messages
        assert engine.live_legs == 0


async def test_the_header_check_fails_without_the_header(engine: SipEngine, tmp_path: Path) -> None:
    async with Sipp("uas_check_headers", tmp_path) as sipp:
        leg = await engine.dial(sipp.uri("+14155550101"), headers={"x-foo": "baz"})
        await asyncio.wait_for(leg.answered.wait(), 5)  # sipp answers, but marks the call
        await leg.hangup()
        await asyncio.wait_for(leg.wait_ended(), 5)
        result = await sipp.wait(10)
    assert result.returncode == 1
    assert "Failed regexp match" in result.errors


@pytest.mark.parametrize(
    ("scenario", "code"),
    [("uas_busy", 486), ("uas_not_found", 404), ("uas_unavailable", 503)],
)
async def test_a_refused_call_ends_with_the_carrier_code(
    engine: SipEngine, tmp_path: Path, scenario: str, code: int
) -> None:
    async with Sipp(scenario, tmp_path) as sipp:
        leg = await engine.dial(sipp.uri("+14155550101"), caller_id="+14155550100")
        end = await asyncio.wait_for(leg.wait_ended(), 10)
        assert (end.code, end.by_remote) == (code, True)
        assert not leg.answered.is_set()
        with pytest.raises(EOFError):
            await leg.read_audio()
        result = await sipp.wait(10)
        assert result.ok, result.errors
        assert "From: <sip:+14155550100@" in result.messages


async def test_audio_flows_both_ways_with_a_phone(engine: SipEngine) -> None:
    args = ("--answer", "--tone", "1000", "--warmup", "0.6", "--listen", "1.5", "--hangup")
    async with PhoneProcess(*args) as phone:
        leg = await engine.dial(phone.uri())
        await asyncio.wait_for(leg.answered.wait(), 5)
        heard = await asyncio.wait_for(talk(leg, Tone(440)), 20)
        end = await leg.wait_ended()
        report = await phone.result()
    assert end.by_remote and end.code == 200
    freq, rms = analyse(heard[40:])  # past the first 0.8 s
    assert abs(freq - 1000) <= 20 and rms > 1000, (freq, rms)
    assert abs(report["freq"] - 440) <= 20 and report["rms"] > 1000, report


async def test_a_tone_comes_back_from_the_sipp_echo(engine: SipEngine, tmp_path: Path) -> None:
    async with Sipp("uas_answer", tmp_path) as sipp:
        leg = await engine.dial(sipp.uri("+14155550101"))
        await asyncio.wait_for(leg.answered.wait(), 5)
        heard = await asyncio.wait_for(talk(leg, Tone(440), frames=100), 10)
        await leg.hangup()
        assert (await sipp.wait(10)).ok
    freq, rms = analyse(heard[50:])
    assert abs(freq - 440) <= 20 and rms > 1000, (freq, rms)


async def test_dtmf_goes_both_ways(engine: SipEngine) -> None:
    args = ("--answer", "--send-dtmf", "45*", "--expect-dtmf", "3", "--listen", "1.0")
    async with PhoneProcess(*args, "--hangup") as phone:
        leg = await engine.dial(phone.uri())
        received: list[str] = []
        leg.on_dtmf(received.append)
        await asyncio.wait_for(leg.answered.wait(), 5)
        await leg.send_dtmf("12#")
        await asyncio.wait_for(leg.wait_ended(), 20)
        report = await phone.result()
    assert report["digits"] == "12#"
    assert "".join(received) == "45*"


async def test_an_incoming_call_is_answered(engine: SipEngine, tmp_path: Path) -> None:
    invites: list[IncomingInvite] = []
    legs: list[SipLeg] = []

    async def handler(invite: IncomingInvite) -> None:
        invites.append(invite)
        await invite.ring()
        legs.append(await invite.answer())

    engine.on_incoming(handler)
    uac = Sipp(
        "uac_invite",
        tmp_path,
        remote=f"127.0.0.1:{engine.local_port}",
        service="+14155550199",
        duration_ms=1000,
    )
    async with uac:
        result = await uac.wait(20)
    assert result.ok, result.errors
    [invite] = invites
    assert invite.to_user == "+14155550199"
    assert invite.headers == {"x-parley-test": "inbound"}
    assert invite.from_uri.startswith("sip:+15550100@127.0.0.1")
    end = await asyncio.wait_for(legs[0].wait_ended(), 5)
    assert legs[0].answered.is_set()
    assert (end.code, end.by_remote) == (200, True)


async def test_stop_ends_live_legs(tmp_path: Path) -> None:
    engine = SipEngine(EngineConfig())
    await engine.start()
    async with Sipp("uas_answer", tmp_path) as sipp:
        answered = await engine.dial(sipp.uri("a"))
        await asyncio.wait_for(answered.answered.wait(), 5)
        await talk(answered, Tone(300), frames=10)
        assert engine.live_legs == 1
        await asyncio.wait_for(engine.stop(), 10)
        end = answered.ended.result()
        assert not end.by_remote
        with pytest.raises(EOFError):
            await answered.read_audio()
        assert engine.live_legs == 0
        with pytest.raises(SipError):
            await engine.dial(sipp.uri("b"))
        await engine.stop()  # idempotent
        assert "BYE sip:" in (await sipp.wait(10)).messages


async def test_calls_rtp_ports_come_from_the_configured_range(tmp_path: Path) -> None:
    # PARLEY_SIP_RTP_PORT: a firewall or network policy opens exactly these ports.
    start = free_port() & ~1
    engine = SipEngine(EngineConfig(rtp_port_start=start))
    await engine.start()
    try:
        async with Sipp("uas_answer", tmp_path) as sipp:
            leg = await engine.dial(sipp.uri("a"))
            await asyncio.wait_for(leg.answered.wait(), 5)
            await leg.hangup()
            await asyncio.wait_for(leg.wait_ended(), 5)
            messages = (await sipp.wait(10)).messages
    finally:
        await engine.stop()
    offered = re.search(r"^m=audio (\d+) ", messages, re.MULTILINE)
    assert offered is not None, messages
    assert start <= int(offered.group(1)) < start + 4 * engine.max_calls


async def test_stop_without_start_is_fine() -> None:
    await SipEngine(EngineConfig()).stop()


async def test_concurrent_legs_each_hear_their_own_tone(
    engine: SipEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    count = engine.max_calls
    async with Sipp("uas_answer", tmp_path, calls=count, trace_messages=False) as sipp:
        legs = await asyncio.gather(*(engine.dial(sipp.uri(f"leg{i}")) for i in range(count)))
        await asyncio.wait_for(asyncio.gather(*(leg.answered.wait() for leg in legs)), 10)
        if count < 1024:
            with pytest.raises(SipError):
                await engine.dial(sipp.uri("one-too-many"))
        tones = [Tone(300 + 40 * i) for i in range(count)]
        cpu, wall = time.process_time(), time.monotonic()
        heard = await asyncio.wait_for(
            asyncio.gather(
                *(talk(leg, tone, frames=150) for leg, tone in zip(legs, tones, strict=True))
            ),
            20,
        )
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        await asyncio.gather(*(leg.hangup() for leg in legs))
        assert (await sipp.wait(15)).ok
    for tone, frames in zip(tones, heard, strict=True):
        freq, rms = analyse(frames[75:])
        assert abs(freq - tone.freq) <= 20 and rms > 1000, (tone.freq, freq, rms)
    with capsys.disabled():
        print(
            f"\n{count} concurrent legs (max {engine.max_calls}), {wall:.2f} s of audio: "
            f"CPU {cpu / wall * 100:.1f}% of a core, {cpu / wall / count * 100:.2f}% per leg"
        )


async def test_call_slots_are_reused_by_call_after_call(engine: SipEngine, tmp_path: Path) -> None:
    """pjsua gives an ended call's slot to the next call: three rounds of every slot, each
    call answered, hung up and over within a second (a stale Call object once kept its slot's
    user data, and the next call there never heard of its end)."""
    rounds = 3 * engine.max_calls
    async with Sipp(
        "uas_answer", tmp_path / "sipp", calls=rounds, limit=engine.max_calls
    ) as carrier:
        for _ in range(3):
            legs = [await engine.dial(carrier.uri("bob")) for _ in range(engine.max_calls)]
            with pytest.raises(SipError):
                await engine.dial(carrier.uri("bob"))  # every slot is taken
            for leg in legs:
                await asyncio.wait_for(leg.answered.wait(), 5)
            for leg in legs:
                await leg.hangup()
                end = await asyncio.wait_for(leg.wait_ended(), 1)
                assert (end.code, end.by_remote) == (200, False)
            assert engine.live_legs == 0
        assert (await carrier.wait(10)).ok
