"""The conference mixer's parts without a network: the limiter, the N-1 mixes (real Opus
packets through Mixer.mix_once), the jitter inbox and speaking detection."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from parley_conference.inbox import LOST, Inbox
from parley_conference.mixer import (
    ATTACK_SAMPLES,
    HANGOVER_FRAMES,
    SPEAKING_LEVEL,
    Limiter,
    Mixer,
    VoiceActivity,
    level,
)
from parley_conference.opus import FRAME_SAMPLES, OpusDecoder, OpusEncoder, silent_packet

RATE = 48_000
Samples = np.ndarray[Any, np.dtype[np.float64]]


def tone(hz: float, amplitude: float, frames: int, first: int = 0) -> np.ndarray[Any, Any]:
    """`frames` consecutive 20 ms frames of a sine (rows), amplitude a fraction of full scale."""
    n = np.arange(first * FRAME_SAMPLES, (first + frames) * FRAME_SAMPLES)
    wave = amplitude * 32767 * np.sin(2 * np.pi * hz * n / RATE)
    return wave.reshape(frames, FRAME_SAMPLES)


# -- the limiter ---------------------------------------------------------------------------


def test_quiet_mixes_pass_the_limiter_untouched() -> None:
    limiter = Limiter()
    for frame in tone(440, 0.7, 20):  # up to -3 dBFS: under the knee
        mix = frame.astype(np.int32)
        out, limited = limiter.process(mix)
        assert out.dtype == np.int16 and not limited
        assert np.array_equal(out, mix)


def test_loud_sums_never_wrap_nor_pass_the_ceiling_and_the_gain_recovers() -> None:
    limiter = Limiter()
    # Ten loud tones at once: a sum of up to ~8x full scale.
    frames = sum(tone(200 + 130 * i, 0.8, 50).astype(np.int32) for i in range(10))
    for index, mix in enumerate(frames):
        out, limited = limiter.process(mix)
        assert limited
        wide = out.astype(np.int32)
        assert np.abs(wide).max() <= 32767
        # No wrap-around: every loud sample keeps its sign.
        loud = np.abs(mix) > 1000
        assert np.all(np.sign(wide[loud]) == np.sign(mix[loud]))
        # Once the gain is down (2 ms into the first frame), under the ceiling.
        settled = wide[ATTACK_SAMPLES:] if index == 0 else wide
        assert np.abs(settled).max() <= limiter.ceiling + 1, index
        if index >= 5:  # ... and near it, not far under
            assert np.abs(wide).max() > 0.8 * 32767
    # Once the loud passage is over, the gain comes back to 1 (and quiet is untouched again).
    quiet = tone(440, 0.3, 100).astype(np.int32)
    for mix in quiet:
        out, _ = limiter.process(mix)
    assert limiter.gain == 1.0
    out, limited = limiter.process(quiet[0])
    assert not limited and np.array_equal(out, quiet[0])


def test_a_sum_over_full_scale_is_bent_not_clipped_flat() -> None:
    limiter = Limiter()
    # Two tones: peaks of 1.3x full scale, from the first sample on.
    mix = (tone(300, 0.65, 1) + tone(310, 0.65, 1))[0].astype(np.int32)
    out, limited = limiter.process(mix)
    wide = out.astype(np.int32)
    assert limited and np.abs(wide).max() < 32767 - 512  # well off the rail
    # Clipped at full scale, a quarter of this frame would sit flat on the rail; bent, few
    # samples come near the top.
    top = np.abs(wide).max()
    assert np.count_nonzero(np.abs(wide) >= 0.99 * top) < 0.03 * len(wide)


def test_the_gain_changes_without_steps() -> None:
    limiter = Limiter()
    loud = tone(300, 0.5, 4).astype(np.int32) * 4
    first, _ = limiter.process(loud[0])
    second, _ = limiter.process(loud[1])
    # The attack frame ramps down; the next one starts where it ended.
    ratio_end = abs(int(first[-240:].astype(np.int32).max())) / float(loud[0][-240:].max())
    ratio_next = abs(int(second[:240].astype(np.int32).max())) / float(loud[1][:240].max())
    assert ratio_next == pytest.approx(ratio_end, rel=0.1)


# -- N-1 mixes through real Opus packets ---------------------------------------------------


class FakeLeg:
    """A participant's leg as the mixer sees it, without a network."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.connected = asyncio.Event()
        self.connected.set()
        self.sent: list[bytes] = []
        self.own: list[bytes] = []  # what it sent, in order
        self.outgoing = self
        self._seq = 0

    def push(self, payload: bytes) -> None:
        self.sent.append(payload)

    def send(self, payload: bytes) -> None:
        """What the participant sends (as its next RTP packet)."""
        self.own.append(payload)
        self.inbox.push(self._seq & 0xFFFF, payload, len(payload) <= 3)
        self._seq += 1


def strength(samples: Samples, hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    return float(spectrum[np.abs(freqs - hz) <= 15].max())


def heard(payloads: list[bytes]) -> Samples:
    decoder = OpusDecoder()
    pcm = np.concatenate([decoder.decode(p).astype(np.float64) for p in payloads]) / 32768
    return pcm[FRAME_SAMPLES * 10 :]  # past the start


def run(mixer: Mixer, legs: dict[str, FakeLeg], sources: dict[str, Any], ticks: int) -> None:
    """Each tick, every source sends one packet (its frame of the tick, or silence for None
    or a row of NaN) and the mixer mixes once."""
    encoders = {name: OpusEncoder() for name in sources}
    silence = silent_packet()
    for tick in range(ticks):
        for name, source in sources.items():
            if source is None or np.isnan(source[tick][0]):
                legs[name].send(silence)
            else:
                frame = np.ascontiguousarray(source[tick], dtype=np.int16)
                legs[name].send(encoders[name].encode(frame))
        mixer.mix_once()


def test_speakers_hear_all_but_themselves_and_listeners_share_one_mix() -> None:
    mixer = Mixer()
    legs = {name: FakeLeg() for name in ("a", "b", "c", "x", "y")}
    for name, leg in legs.items():
        mixer.join("r", name, leg)
    ticks = 60
    sources = {
        "a": tone(300, 0.25, ticks),
        "b": tone(500, 0.25, ticks),
        "c": tone(700, 0.25, ticks),
        "x": None,  # sends silence
        "y": None,
    }
    run(mixer, legs, sources, ticks)
    assert sorted(mixer.speaking("r")) == ["a", "b", "c"]
    for name, hz in (("a", 300), ("b", 500), ("c", 700)):
        samples = heard(legs[name].sent)
        others = [strength(samples, f) for f in (300, 500, 700) if f != hz]
        assert min(others) > 20
        assert strength(samples, hz) < min(others) / 30, name
    # Listeners get the very same packets: encoded once a tick for the room.
    assert legs["x"].sent == legs["y"].sent
    assert all(a is b for a, b in zip(legs["x"].sent[-20:], legs["y"].sent[-20:], strict=True))
    samples = heard(legs["x"].sent)
    assert min(strength(samples, f) for f in (300, 500, 700)) > 20
    stats = mixer.stats
    assert stats.ticks == ticks and stats.frames_sent == 5 * ticks
    # Silence was never decoded (the inbox starts on the second tick): only the tones were.
    assert stats.quiet_skipped + stats.unmixed_skipped == 2 * (ticks - 1)
    assert stats.decoded <= 3 * ticks
    # Per tick (once all speak): three own mixes and one shared.
    assert stats.shared_encoded <= ticks and stats.encoded <= 4 * ticks


def test_a_lone_speaker_hears_silence_and_muted_ones_are_not_decoded() -> None:
    mixer = Mixer()
    legs = {name: FakeLeg() for name in ("a", "b")}
    for name, leg in legs.items():
        mixer.join("r", name, leg)
    mixer.set_muted("r", "b", True)
    ticks = 40
    run(mixer, legs, {"a": tone(300, 0.25, ticks), "b": tone(500, 0.25, ticks)}, ticks)
    silent = silent_packet()
    assert set(legs["a"].sent) == {silent}  # b is muted: a has no one to hear
    assert strength(heard(legs["b"].sent), 300) > 20  # b still hears a
    assert mixer.stats.decoded <= ticks  # only a's packets
    assert mixer.speaking("r") == ["a"]


def test_whoever_hears_one_speaker_alone_gets_its_packets_as_they_came() -> None:
    mixer = Mixer()
    legs = {name: FakeLeg() for name in ("a", "b", "x")}
    for name, leg in legs.items():
        mixer.join("r", name, leg)
    ticks = 60
    # a speaks throughout, b from tick 30 on: then a and b each hear the other alone.
    b = tone(500, 0.25, ticks)
    b[:30] = np.nan
    run(mixer, legs, {"a": tone(300, 0.25, ticks), "b": b, "x": None}, ticks)
    a_packets, b_packets = set(legs["a"].own), set(legs["b"].own)
    # While a spoke alone (past the inbox's start), b and x got a's own packets, unmixed.
    for name in ("b", "x"):
        assert set(legs[name].sent[5:28]) <= a_packets, name
    # Once both spoke, each got the other's own packets; x a mix of both, encoded.
    assert set(legs["a"].sent[40:]) <= b_packets and set(legs["b"].sent[40:]) <= a_packets
    assert not set(legs["x"].sent[40:]) & (a_packets | b_packets)
    samples = heard(legs["x"].sent[40:])
    assert min(strength(samples, 300), strength(samples, 500)) > 20
    assert strength(heard(legs["a"].sent[30:]), 500) > 20
    stats = mixer.stats
    # Encodes only for x's mix of two: none while one spoke.
    assert stats.encoded == stats.shared_encoded <= ticks - 30
    assert stats.forwarded >= (28 - 2) + 2 * (ticks - 32)


def test_a_lone_speakers_concealed_frame_is_encoded_not_forwarded() -> None:
    mixer = Mixer()
    legs = {name: FakeLeg() for name in ("a", "x")}
    for name, leg in legs.items():
        mixer.join("r", name, leg)
    encoder = OpusEncoder()
    frames = tone(300, 0.25, 20)
    for tick in range(20):
        if tick not in (12, 13):  # two lost: the inbox runs dry and the decoder conceals
            packet = encoder.encode(np.ascontiguousarray(frames[tick], dtype=np.int16))
            legs["a"].own.append(packet)
            legs["a"].inbox.push(tick, packet, False)
        mixer.mix_once()
    assert mixer.stats.concealed >= 1
    assert mixer.stats.encoded == mixer.stats.concealed  # the concealed frame only
    # All x heard was a's own packets, but the concealed frame (and silence at the start).
    own = set(legs["a"].own) | {silent_packet()}
    assert sum(p not in own for p in legs["x"].sent) == mixer.stats.concealed


def test_at_most_three_speakers_are_mixed_and_they_keep_the_floor() -> None:
    mixer = Mixer(max_speakers=3)
    names = ("a", "b", "c", "d", "e", "x")
    legs = {name: FakeLeg() for name in names}
    for name in names:
        mixer.join("r", name, legs[name])
    ticks = 150
    # d and e off the 100 Hz grid of a, b and c's intermodulation (the codec's, -30 dB).
    hz = {"a": 300, "b": 400, "c": 500, "d": 630, "e": 770}
    amplitude = {"a": 0.2, "b": 0.19, "c": 0.18, "d": 0.12, "e": 0.1}
    sources: dict[str, Any] = {n: tone(hz[n], amplitude[n], ticks) for n in hz}
    sources["x"] = None
    sources["d"][50:] *= 4  # d gets loud: it still waits for a place
    sources["a"][100:] = np.nan  # a stops: d takes its place after the hangover
    encoders = {name: OpusEncoder() for name in sources}
    silence = silent_packet()
    mixed_at: dict[int, list[str]] = {}
    for tick in range(ticks):
        for name, source in sources.items():
            if source is None or np.isnan(source[tick][0]):
                legs[name].send(silence)
            else:
                frame = np.ascontiguousarray(source[tick], dtype=np.int16)
                legs[name].send(encoders[name].encode(frame))
        mixer.mix_once()
        mixed_at[tick] = mixer.mixed("r")
    assert mixed_at[40] == ["a", "b", "c"]
    assert mixed_at[95] == ["a", "b", "c"]  # d, louder now, waits
    assert mixed_at[149] == ["b", "c", "d"]
    # The listener heard a, b and c, not d or e, while a spoke.
    samples = heard(legs["x"].sent[:95])
    strong = min(strength(samples, f) for f in (300, 400, 500))
    assert max(strength(samples, f) for f in (630, 770)) < strong / 30
    # A speaker left out hears the room's mix like any listener.
    assert legs["e"].sent[-1] == legs["x"].sent[-1]
    # While the three places were held, the others' packets were not decoded.
    assert mixer.stats.decoded < 3 * ticks + 2 * 5
    assert mixer.stats.unmixed_skipped >= 3 * 90


def test_an_empty_room_goes_with_its_last_participant() -> None:
    mixer = Mixer()
    mixer.join("r", "a", FakeLeg())
    mixer.join("s", "b", FakeLeg())
    assert (mixer.rooms(), mixer.participants()) == (2, 2)
    mixer.leave("r", "a")
    mixer.leave("r", "a")  # twice: no harm
    assert (mixer.rooms(), mixer.participants()) == (1, 1)
    mixer.mix_once()
    assert mixer.stats.frames_sent == 1


# -- the inbox -----------------------------------------------------------------------------


def test_the_inbox_starts_after_two_packets_and_plays_in_sequence_order() -> None:
    inbox = Inbox(start=2, capacity=4, conceal=2)
    inbox.push(10, b"10")
    assert inbox.pop() is None  # one waiting: not yet
    inbox.push(12, b"12")  # 11 is late
    inbox.push(11, b"11")
    got = [inbox.pop() for _ in range(3)]
    assert [p.payload for p in got if p is not None] == [b"10", b"11", b"12"]
    inbox.push(11, b"11")  # after it was played: discarded
    inbox.push(13, b"13")
    inbox.push(13, b"13")  # a duplicate
    assert inbox.discarded == 2 and len(inbox) == 1


def test_an_empty_inbox_conceals_twice_then_goes_silent_until_refilled() -> None:
    inbox = Inbox(start=2, capacity=4, conceal=2)
    inbox.push(1, b"1")
    inbox.push(2, b"2")
    assert [inbox.pop() is not None for _ in range(2)] == [True, True]
    assert inbox.pop() is LOST and inbox.pop() is LOST
    assert inbox.pop() is None and not inbox.playing
    inbox.push(3, b"3")
    assert inbox.pop() is None  # buffering again
    inbox.push(4, b"4")
    packet = inbox.pop()
    assert packet is not None and packet.payload == b"3"
    assert inbox.concealed == 2


def test_a_full_inbox_drops_the_oldest_and_sequence_numbers_wrap() -> None:
    inbox = Inbox(start=2, capacity=4, conceal=2)
    for seq in (65533, 65534, 65535, 0, 1, 2):
        inbox.push(seq, seq.to_bytes(2, "big"))
    assert len(inbox) == 4 and inbox.dropped == 2
    order = []
    while (packet := inbox.pop()) not in (None, LOST):
        assert packet is not None
        order.append(int.from_bytes(packet.payload, "big"))
    assert order == [65535, 0, 1, 2]
    inbox.push(65534, b"old")  # before the wrap: long played
    assert len(inbox) == 0 and inbox.discarded == 1


def test_a_lost_packet_is_not_waited_for_and_clear_restarts() -> None:
    inbox = Inbox(start=2, capacity=4, conceal=2)
    for seq in (1, 2, 4):  # 3 lost
        inbox.push(seq, bytes([seq]))
    assert [p.payload for p in (inbox.pop(), inbox.pop(), inbox.pop()) if p] == [
        b"\1",
        b"\2",
        b"\4",
    ]
    inbox.push(5, b"\5")
    inbox.clear()
    assert len(inbox) == 0 and not inbox.playing
    inbox.push(5, b"\5")  # what was cleared counts as played
    assert len(inbox) == 0


# -- speaking ------------------------------------------------------------------------------


def test_speaking_starts_at_once_and_lasts_a_hangover() -> None:
    voice = VoiceActivity(hangover=3)
    assert not voice.active
    assert voice.update(True)
    assert [voice.update(False) for _ in range(4)] == [True, True, True, False]
    assert voice.update(True) and voice.active
    voice.reset()
    assert not voice.active
    assert HANGOVER_FRAMES * 20 <= 500  # a short hangover (ms)


def test_the_level_tells_speech_from_a_noise_floor() -> None:
    rng = np.random.default_rng(1)
    floor = rng.normal(0, 30, FRAME_SAMPLES).astype(np.int16)  # about -60 dBFS
    speech = tone(220, 0.05, 1)[0].astype(np.int16)  # about -29 dBFS
    assert level(floor) < SPEAKING_LEVEL < level(speech)
    assert level(np.full(FRAME_SAMPLES, -32768, dtype=np.int16)) == 32768  # no overflow


# -- metrics -------------------------------------------------------------------------------


def test_the_mixer_figures_are_exported_when_scraped() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from parley_conference.mixer_metrics import register

    registry = CollectorRegistry()
    mixer = Mixer()
    register(mixer, registry)
    mixer.join("r", "a", FakeLeg())
    mixer.mix_once()
    text = generate_latest(registry).decode()
    assert "parley_conference_mixer_ticks_total 1.0" in text
    assert "parley_conference_mixer_frames_sent_total 1.0" in text
    assert "parley_conference_participants 1.0" in text
    assert "parley_conference_rooms 1.0" in text
