"""The conference media core against real aiortc clients on loopback: three plain peer
connections offering tones of 300, 500 and 700 Hz to three MediaLegs in one Mixer room;
each must hear the other two and not itself."""

from __future__ import annotations

import asyncio
import collections
import struct
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from parley_client.sources import PatternSource, ToneSource
from parley_conference.media import MediaLeg, decoder_thread_running
from parley_conference.metrics import RTP_REJECTED
from parley_conference.mixer import Mixer
from parley_legs.webrtc import use_host_addresses
from parley_protocol.errors import ErrorCode, ParleyError
from tests.support.media import SAMPLE_RATE
from tests.support.wire import eventually

TONES = (300, 500, 700)
ROOM = "room-1"
Samples = np.ndarray[Any, np.dtype[np.float64]]

use_host_addresses(None)  # aioice's addresses and loopback, as the service does by default


class Client:
    """A plain aiortc peer connection sending a tone and keeping what it hears."""

    def __init__(self, hz: int) -> None:
        self.hz = hz
        self.name = f"p{hz}"
        self.pc = RTCPeerConnection()
        self.pc.addTrack(ToneSource(hz, 0.25))
        self.heard: collections.deque[Samples] = collections.deque(maxlen=500)
        self._reader: asyncio.Task[None] | None = None
        self.pc.on("track", self._track)

    def _track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._reader = asyncio.get_running_loop().create_task(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame) and frame.sample_rate == SAMPLE_RATE
                channels = len(frame.layout.channels)
                samples = frame.to_ndarray().reshape(-1, channels)[:, 0]
                self.heard.append(samples.astype(np.float64) / 32768)
        except MediaStreamError:
            return

    async def connect(self, leg: MediaLeg) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await leg.answer(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def listen(self, seconds: float) -> Samples:
        """What it hears over the next `seconds`."""
        self.heard.clear()
        await asyncio.sleep(seconds)
        assert self.heard, f"{self.name} heard nothing"
        return np.concatenate(list(self.heard))

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()


def strength(samples: Samples, hz: float) -> float:
    """The spectrum's peak within 15 Hz of `hz` (a windowed FFT's magnitude)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    return float(spectrum[np.abs(freqs - hz) <= 15].max())


def assert_hears(samples: Samples, tones: set[int], absent: set[int], who: str) -> None:
    heard = {hz: strength(samples, hz) for hz in TONES}
    floor = min(heard[hz] for hz in tones)
    assert floor > 20, f"{who} hears too little of {tones}: {heard}"
    for hz in absent:
        # -30 dB under the weakest tone it should hear.
        assert heard[hz] < floor / 30, f"{who} hears {hz} Hz: {heard}"


class Room:
    def __init__(self, mixer: Mixer) -> None:
        self.mixer = mixer
        self.clients = [Client(hz) for hz in TONES]
        self.legs: dict[str, MediaLeg] = {}
        self.states: dict[str, list[str]] = {}

    async def open(self) -> None:
        for client in self.clients:
            states = self.states.setdefault(client.name, [])
            leg = MediaLeg(states.append)
            self.legs[client.name] = leg
            self.mixer.join(ROOM, client.name, leg)
            await client.connect(leg)
        await asyncio.wait_for(
            asyncio.gather(*(leg.connected.wait() for leg in self.legs.values())), 10
        )

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        for leg in self.legs.values():
            await leg.close()


@pytest_asyncio.fixture
async def room() -> AsyncIterator[Room]:
    mixer = Mixer()
    await mixer.start()
    room = Room(mixer)
    try:
        await room.open()
        await asyncio.sleep(0.6)  # the clients' and the inboxes' buffers fill
        yield room
    finally:
        await room.close()
        await mixer.stop()


async def test_each_hears_the_others_and_not_itself(room: Room) -> None:
    shared_before = room.mixer.stats.shared_encoded
    heard = await asyncio.gather(*(client.listen(1.0) for client in room.clients))
    for client, samples in zip(room.clients, heard, strict=True):
        others = {hz for hz in TONES if hz != client.hz}
        assert_hears(samples, others, {client.hz}, client.name)
    assert sorted(room.mixer.speaking(ROOM)) == ["p300", "p500", "p700"]
    stats = room.mixer.stats
    assert stats.frames_sent > 0 and stats.decoded > 0
    # Each speaker has its own mix; no one is left to hear the shared one.
    assert stats.shared_encoded == shared_before
    assert all(states[-1] == "connected" for states in room.states.values())


async def test_a_muted_participant_is_not_heard_and_still_hears(room: Room) -> None:
    room.mixer.set_muted(ROOM, "p300", True)
    await asyncio.sleep(0.3)
    heard = dict(
        zip(
            TONES,
            await asyncio.gather(*(client.listen(1.0) for client in room.clients)),
            strict=True,
        )
    )
    assert_hears(heard[300], {500, 700}, {300}, "muted p300")
    assert_hears(heard[500], {700}, {300, 500}, "p500")
    assert_hears(heard[700], {500}, {300, 700}, "p700")
    assert "p300" not in room.mixer.speaking(ROOM)
    # ... and heard again once unmuted.
    room.mixer.set_muted(ROOM, "p300", False)
    await asyncio.sleep(0.3)
    assert_hears(await room.clients[1].listen(1.0), {300, 700}, {500}, "p500 after unmute")


async def test_leaving_removes_a_participant_and_the_last_the_room(room: Room) -> None:
    room.mixer.leave(ROOM, "p700")
    await room.legs["p700"].close()
    assert room.mixer.participants() == 2 and room.mixer.rooms() == 1
    await asyncio.sleep(0.3)
    heard = await asyncio.gather(*(client.listen(1.0) for client in room.clients[:2]))
    assert_hears(heard[0], {500}, {300, 700}, "p300")
    assert_hears(heard[1], {300}, {500, 700}, "p500")
    # One left alone hears silence.
    room.mixer.leave(ROOM, "p500")
    await asyncio.sleep(0.3)
    alone = await room.clients[0].listen(0.5)
    assert float(np.sqrt(np.mean(alone**2))) < 1e-3
    room.mixer.leave(ROOM, "p300")
    assert room.mixer.participants() == 0 and room.mixer.rooms() == 0


async def test_no_decoder_thread_is_left_and_rtcp_still_flows(room: Room) -> None:
    for name, leg in room.legs.items():
        receiver = leg.receiver
        assert receiver is not None
        # The receiver did start its thread (so the check below means something) ...
        assert receiver._RTCRtpReceiver__decoder_thread is not None, name  # type: ignore[attr-defined]
        # ... and it ended at once.
        assert not decoder_thread_running(receiver), name
    decoders = [t for t in threading.enumerate() if t.name == "audio-decoder" and t.is_alive()]
    client_receivers = [t.receiver for client in room.clients for t in client.pc.getTransceivers()]
    assert len(decoders) == sum(decoder_thread_running(r) for r in client_receivers) == 3
    # The legs' receivers still send reports: each client's sender sees its round trip.
    await asyncio.sleep(1.6)  # aiortc reports every 0.5-1.5 s
    for client in room.clients:
        sender = client.pc.getSenders()[0]
        reports = [s for s in (await sender.getStats()).values() if s.type == "remote-inbound-rtp"]
        assert reports, f"{client.name} got no receiver report"
        assert reports[0].packetsLost == 0


async def test_rtp_goes_by_the_wire_both_ways_and_each_side_still_reports(room: Room) -> None:
    before = {name: (leg.outgoing.sent, leg.outgoing.received) for name, leg in room.legs.items()}

    async def moved() -> bool:
        # 60 more packets each way for every leg (about 1.2 s of audio, however busy the
        # machine is), and long enough for each side to have sent its reports (every 0.5
        # to 1.5 s).
        return all(
            leg.outgoing.sent - before[name][0] >= 60
            and leg.outgoing.received - before[name][1] >= 60
            for name, leg in room.legs.items()
        )

    await eventually(moved, timeout=20, what="60 packets each way by the wire")
    await asyncio.sleep(1.6)
    for name, leg in room.legs.items():
        wire = leg.outgoing
        assert wire.attached, name
        # All by the wire: aiortc's own path (the inbox's count beyond the wire's) took at
        # most the few that came before it was attached.
        assert leg.inbox.received - wire.received < 10, name
        assert wire.rejected == 0 and wire.unsent == 0, name
    for client in room.clients:
        # The client's receiver has the leg's sender reports (the wire keeps their counts:
        # aiortc's own would say 0). The last came 0.5 to 1.5 s after the one before.
        stats = (await client.pc.getReceivers()[0].getStats()).values()
        outbound = [s for s in stats if s.type == "remote-outbound-rtp"]
        assert outbound and outbound[0].packetsSent >= 20, client.name
        assert outbound[0].bytesSent > 20 * 40, client.name  # a tone's Opus packets
        inbound = [s for s in stats if s.type == "inbound-rtp"]
        assert inbound[0].packetsLost == 0, client.name


async def test_a_datagram_that_fails_srtp_is_counted_and_dropped(room: Room) -> None:
    leg = room.legs["p500"]
    rejected_before = RTP_REJECTED.labels("srtp")._value.get()
    pair = leg.pc.getTransceivers()[0].sender.transport.transport._connection._nominated[1]
    address = (pair.local_candidate.host, pair.local_candidate.port)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        for n in range(5):  # RTP-looking (version 2, Opus's type), not encrypted with the keys
            transport.sendto(bytes([0x80, 0x6F, 0, n]) + bytes(60), address)

        async def counted() -> bool:
            return leg.outgoing.rejected >= 5

        await eventually(counted, timeout=10, what="5 datagrams rejected")
    finally:
        transport.close()
    assert leg.outgoing.rejected == 5
    assert RTP_REJECTED.labels("srtp")._value.get() - rejected_before == 5
    # The leg goes on as before.
    heard = await room.clients[1].listen(1.0)
    assert_hears(heard, {300, 700}, {500}, "p500")


async def test_authentic_packets_the_wire_cannot_use_are_counted_by_reason(room: Room) -> None:
    """Encrypted with the right keys (the client's own SRTP session), so only the header
    decides: another payload type, and padding longer than the packet."""
    client, leg = room.clients[0], room.legs["p300"]
    dtls = client.pc.getSenders()[0].transport
    counts = {r: RTP_REJECTED.labels(r)._value.get() for r in ("payload_type", "malformed")}
    ssrc = 0x5EED
    pcmu = struct.pack("!BBHII", 0x80, 0, 1, 0, ssrc) + bytes(160)
    # Padding (P set) said to be 255 bytes long, in a packet of 16.
    overpadded = struct.pack("!BBHII", 0xA0, 111, 2, 960, ssrc) + bytes(3) + b"\xff"
    for packet in (pcmu, overpadded):
        await dtls._send_rtp(packet)

    async def counted() -> bool:
        return leg.outgoing.rejected >= 2

    await eventually(counted, timeout=10, what="2 packets rejected")
    assert RTP_REJECTED.labels("payload_type")._value.get() - counts["payload_type"] == 1
    assert RTP_REJECTED.labels("malformed")._value.get() - counts["malformed"] == 1
    assert leg.outgoing.rejected == 2
    assert_hears(await room.clients[1].listen(1.0), {300, 700}, {500}, "p500")


async def test_a_closed_leg_gives_its_socket_back_and_sends_nothing(room: Room) -> None:
    leg = room.legs["p700"]
    room.mixer.leave(ROOM, "p700")
    pair = leg.pc.getTransceivers()[0].sender.transport.transport._connection._nominated[1]
    assert "datagram_received" in vars(pair.protocol)  # the wire's hook
    await leg.close()
    assert not leg.outgoing.attached
    assert "datagram_received" not in vars(pair.protocol)
    unsent = leg.outgoing.unsent
    leg.outgoing.push(b"\xf8\xff\xfe")  # a late push: counted, not sent, no error
    assert leg.outgoing.unsent == unsent + 1


async def test_a_leg_that_offers_is_heard_and_hears() -> None:
    """The callout way round: the leg offers, the client answers."""
    mixer = Mixer()
    await mixer.start()
    caller, callee = Client(300), Client(500)
    caller_leg, callee_leg = MediaLeg(lambda s: None), MediaLeg(lambda s: None)
    try:
        mixer.join(ROOM, caller.name, caller_leg)
        mixer.join(ROOM, callee.name, callee_leg)
        await caller.connect(caller_leg)
        offer = await callee_leg.offer()
        assert "opus/48000/2" in offer and "PCMU" not in offer  # only what the mixer decodes
        await callee.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await callee.pc.setLocalDescription(await callee.pc.createAnswer())
        await callee_leg.accept_answer(callee.pc.localDescription.sdp)
        await asyncio.wait_for(
            asyncio.gather(caller_leg.connected.wait(), callee_leg.connected.wait()), 10
        )
        await asyncio.sleep(0.6)
        heard = await asyncio.gather(caller.listen(1.0), callee.listen(1.0))
        assert_hears(heard[0], {500}, {300}, "caller")
        assert_hears(heard[1], {300}, {500}, "callee")
        assert callee_leg.receiver is not None
        assert not decoder_thread_running(callee_leg.receiver)
    finally:
        for client in (caller, callee):
            await client.close()
        for leg in (caller_leg, callee_leg):
            await leg.close()
            await leg.close()  # idempotent
        await mixer.stop()


async def test_offers_it_cannot_use_are_refused_and_video_is_declined() -> None:
    # No audio at all.
    client = RTCPeerConnection()
    client.createDataChannel("chat")
    await client.setLocalDescription(await client.createOffer())
    leg = MediaLeg(lambda s: None)
    with pytest.raises(ParleyError) as refused:
        await leg.answer(client.localDescription.sdp)
    assert refused.value.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT
    await leg.close()
    await client.close()
    # Audio, but no Opus.
    client = RTCPeerConnection()
    transceiver = client.addTransceiver(ToneSource(300), direction="sendrecv")
    pcmu = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]
    transceiver.setCodecPreferences(pcmu)
    await client.setLocalDescription(await client.createOffer())
    leg = MediaLeg(lambda s: None)
    with pytest.raises(ParleyError) as refused:
        await leg.answer(client.localDescription.sdp)
    assert refused.value.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT
    await leg.close()
    await client.close()
    # Audio and video: the audio is taken, the video declined (nothing decodes it).
    client = RTCPeerConnection()
    client.addTrack(ToneSource(300))
    client.addTrack(PatternSource())
    await client.setLocalDescription(await client.createOffer())
    leg = MediaLeg(lambda s: None)
    answer = await leg.answer(client.localDescription.sdp)
    video = answer[answer.index("m=video") :]
    assert "a=inactive" in video
    assert "a=sendrecv" in answer[answer.index("m=audio") : answer.index("m=video")]
    await leg.close()
    await client.close()
