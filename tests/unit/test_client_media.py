"""Real media between two clients through the fake gateway: aiortc peer connections on
loopback (ICE host addresses pinned to 127.0.0.1), tones and video patterns both ways,
muting, video pause and resume, a media restart, and the ICE servers a session asks for."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from parley_client import PatternSource, ToneSource
from parley_client.media import IceServer, MediaSettings, PeerMedia
from parley_protocol.pb import calls as calls_pb
from tests.support.calls import Party, established_call
from tests.support.media import SAMPLE_RATE, dominant_hz, marks, received_audio, rms
from tests.unit.call_parties import party
from tests.unit.client_double import Harness, harness, wait_until


async def media_parties(h: Harness) -> tuple[Party, Party]:
    alice = await party(h, "alice", media=True)
    bob = await party(h, "bob", media=True)
    alice.client.audio_controller.set_source(ToneSource(440))
    bob.client.audio_controller.set_source(ToneSource(880))
    return alice, bob


async def test_each_side_hears_the_other_sides_tone(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await media_parties(h)
        call, incoming = await established_call(alice, bob)
        heard_by_alice, heard_by_bob = await asyncio.gather(
            received_audio(call, 1.0), received_audio(incoming, 1.0)
        )
        alice_hz, bob_hz = dominant_hz(heard_by_alice), dominant_hz(heard_by_bob)
        print(
            f"\nalice hears {alice_hz:.1f} Hz (rms {rms(heard_by_alice):.3f}), "
            f"bob hears {bob_hz:.1f} Hz (rms {rms(heard_by_bob):.3f})"
        )
        assert abs(alice_hz - 880) <= 5
        assert abs(bob_hz - 440) <= 5
        assert len(heard_by_bob) >= 0.9 * SAMPLE_RATE
        [asked] = [b for b in h.backend.calls.bodies_of("alice") if b == "get_ice_servers"]
        assert asked
        await call.hangup()
        assert (await incoming.wait_ended(2)).duration > 0.9


async def test_muting_silences_what_the_far_side_receives(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await media_parties(h)
        call, incoming = await established_call(alice, bob)
        audio = alice.client.audio_controller
        await received_audio(incoming, 0.2)  # past the first frames
        before = rms(await received_audio(incoming, 0.5))
        audio.mute()
        assert audio.is_muted
        await received_audio(incoming, 0.3)  # frames on their way
        muted = rms(await received_audio(incoming, 0.5))
        audio.unmute()
        await received_audio(incoming, 0.3)
        after_samples = await received_audio(incoming, 0.5)
        after = rms(after_samples)
        print(f"\nbob receives rms {before:.4f}, muted {muted:.5f}, unmuted {after:.4f}")
        assert before > 0.1
        assert muted < before / 100
        assert after > before / 2 and abs(dominant_hz(after_samples) - 440) <= 5
        assert call.state is incoming.state  # still established: silence is still media


async def test_video_patterns_are_recognised_on_the_far_side(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await media_parties(h)
        alice.client.video_controller.set_capture_source(PatternSource(pattern_id=1))
        bob.client.video_controller.set_capture_source(PatternSource(pattern_id=2))
        call, incoming = await established_call(alice, bob, video=True)
        await wait_until(lambda: "video-added" in alice.heard(call))
        await wait_until(lambda: "video-added" in bob.heard(incoming))
        assert bob.client.video_controller.remote_track is incoming.remote_video_track
        seen_by_alice, seen_by_bob = await asyncio.gather(marks(call, 15), marks(incoming, 15))
        print(f"\nalice sees {seen_by_alice[:4]}..., bob sees {seen_by_bob[:4]}...")
        for seen, sender in ((seen_by_alice, 2), (seen_by_bob, 1)):
            recognised = [m for m in seen if m is not None]
            assert len(recognised) >= 14  # at most one frame in transition
            assert {m.pattern_id for m in recognised} == {sender}
            counters = [m.counter for m in recognised]
            assert all((b - a) % 256 in (1, 2) for a, b in itertools.pairwise(counters))


async def test_video_pause_and_resume_reach_the_far_side(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await media_parties(h)
        _call, incoming = await established_call(alice, bob, video=True)
        track = incoming.remote_video_track
        assert track is not None
        await asyncio.wait_for(track.recv(), 3)
        alice.client.video_controller.pause()
        await wait_until(lambda: "video-paused" in bob.heard(incoming))
        await drain(track, 0.3)
        with pytest.raises(TimeoutError):  # nothing arrives while paused
            await asyncio.wait_for(track.recv(), 0.5)
        alice.client.video_controller.resume()
        await wait_until(lambda: "video-resumed" in bob.heard(incoming))
        mark = PatternSource.decode(await asyncio.wait_for(track.recv(), 3))
        assert mark is not None and mark.pattern_id == 0  # the default capture source
        assert bob.heard(incoming)[-2:] == ["video-paused", "video-resumed"]


async def drain(track: Any, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            await asyncio.wait_for(track.recv(), left)
        except TimeoutError:
            return


async def test_restart_media_recovers_audio(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await media_parties(h)
        call, incoming = await established_call(alice, bob)
        await received_audio(incoming, 0.2)
        await call.restart_media()
        heard_by_alice, heard_by_bob = await asyncio.gather(
            received_audio(call, 1.0), received_audio(incoming, 1.0)
        )
        alice_hz, bob_hz = (
            dominant_hz(heard_by_alice[-24_000:]),
            dominant_hz(heard_by_bob[-24_000:]),
        )
        print(f"\nafter the restart alice hears {alice_hz:.1f} Hz, bob hears {bob_hz:.1f} Hz")
        assert abs(alice_hz - 880) <= 5 and abs(bob_hz - 440) <= 5
        assert rms(heard_by_bob[-24_000:]) > 0.1
        kinds = [s.WhichOneof("kind") for _, s in h.backend.calls.calls[call.call_id].signals]
        assert kinds == ["offer_sdp", "answer_sdp"]
        assert call.state is incoming.state  # established all along


class StunServer(asyncio.DatagramProtocol):
    """A STUN server on loopback that answers Binding requests with the sender's address."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        from aioice import stun

        request = stun.parse_message(data)
        if request.message_method != stun.Method.BINDING:
            return
        self.requests += 1
        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = addr
        assert self.transport is not None
        self.transport.sendto(bytes(response), addr)


async def test_ice_servers_are_asked_once_a_session_and_given_to_the_connection(
    tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    transport, stun_server = await loop.create_datagram_endpoint(
        StunServer, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        async with harness(tmp_path) as h:
            h.backend.calls.ice_servers = [calls_pb.IceServer(urls=[f"stun:127.0.0.1:{port}"])]
            alice, bob = await media_parties(h)
            for _ in range(2):
                call, _incoming = await established_call(alice, bob)
                await call.hangup()
            assert h.backend.calls.bodies_of("alice").count("get_ice_servers") == 1
            assert h.backend.calls.bodies_of("bob").count("get_ice_servers") == 1
            assert stun_server.requests >= 4  # every peer connection asked it
            offer = h.backend.calls.calls[call.call_id].offer_sdp
            assert " typ srflx " in offer  # its answer became a candidate
    finally:
        transport.close()


async def test_the_relay_policy_and_the_servers_reach_aiortc() -> None:
    settings = MediaSettings(
        ice_servers=(IceServer(("turn:127.0.0.1:3478",), "user", "secret"),),
        ice_transport_policy="relay",
        host_addresses=("127.0.0.1",),
    )
    media = PeerMedia(settings, None, list, video=False)  # type: ignore[arg-type]
    try:
        configuration = media.configuration
        assert configuration.iceTransportPolicy.value == "relay"
        [server] = configuration.iceServers or []
        assert (server.urls, server.username, server.credential) == (
            ["turn:127.0.0.1:3478"],
            "user",
            "secret",
        )
    finally:
        await media.close()


async def test_a_failed_media_connection_makes_the_caller_renegotiate(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await media_parties(h)
        call, incoming = await established_call(alice, bob)
        signals = h.backend.calls.calls[call.call_id].signals
        # ICE on loopback does not fail by itself (aioice needs ~30 s of lost consent), so
        # each side is told its connection failed as aiortc would tell it.
        incoming.media_state(incoming._media, "failed")  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        assert signals == []  # the callee waits for the caller's offer
        failed = call._media
        call.media_state(failed, "failed")  # type: ignore[arg-type]
        await wait_until(lambda: len(signals) == 2 and call._media is not failed)
        assert [s.WhichOneof("kind") for _, s in signals] == ["offer_sdp", "answer_sdp"]
        heard = await received_audio(incoming, 1.0)
        assert abs(dominant_hz(heard[-24_000:]) - 440) <= 5
        assert call.state is incoming.state


async def test_the_video_controller_switches_capture_sources() -> None:
    from parley_client import ResizeBehaviour, VideoController

    video = VideoController(media=True)
    default = video.local_track
    assert isinstance(default, PatternSource) and video.local_track is default
    front, back = PatternSource(pattern_id=1), PatternSource(pattern_id=2)
    video.set_capture_source(front)
    assert video.local_track is front
    video.toggle_capture_source()
    assert video.local_track is default
    video.toggle_capture_source()
    assert video.local_track is front
    video.set_capture_source(back)
    video.toggle_capture_source()
    assert video.local_track is front
    with pytest.raises(ValueError, match="not a video track"):
        video.set_capture_source(ToneSource(440))
    assert video.resize_behaviour is ResizeBehaviour.ASPECT_FIT
    video.resize_behaviour = ResizeBehaviour.ASPECT_FILL
    assert video.resize_behaviour is ResizeBehaviour.ASPECT_FILL
    assert VideoController(media=False).local_track is None


async def test_the_audio_controller_keeps_its_switches() -> None:
    from parley_client import AudioController

    audio = AudioController(media=True)
    assert audio.source is None and not audio.is_muted and not audio.is_speaker_enabled
    tone = ToneSource(440)
    audio.set_source(tone)
    assert audio.source is tone
    with pytest.raises(ValueError, match="not an audio track"):
        audio.set_source(PatternSource())
    audio.enable_speaker()
    assert audio.is_speaker_enabled
    audio.disable_speaker()
    audio.mute()
    assert audio.is_muted and not audio.is_speaker_enabled
    audio.unmute()
    assert not audio.is_muted
