"""The client's WebRTC leg on a service that holds remote legs (sip): answers the client's
offer, sends it audio from a queue of PCM frames, and hands the client's audio on as PCM.

PCM is the legs' one format both ways: 48 kHz mono signed 16-bit little-endian in 20 ms
frames (960 samples, 1920 bytes). What the client sends (Opus, usually stereo at 48 kHz) is
resampled to it by PyAV. Which local addresses ICE offers is a setting (`use_host_addresses`,
once per process: aioice reads them from a module-level function).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
from collections.abc import Callable

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame
from av.audio.resampler import AudioResampler

from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.logs import get_logger

log = get_logger("parley.legs.webrtc")

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960
FRAME_BYTES = FRAME_SAMPLES * 2
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
# Frames waiting to be sent to the client; beyond this the oldest is dropped (latency is
# worse than a gap).
SEND_QUEUE_FRAMES = 5


def host_addresses(setting: str) -> tuple[str, ...] | None:
    """A comma-separated setting of ICE host addresses ("": None, aioice's choice)."""
    chosen = tuple(a.strip() for a in setting.split(",") if a.strip())
    return chosen or None


def use_host_addresses(addresses: tuple[str, ...] | None) -> None:
    """Offer only these local addresses as ICE host candidates (None: aioice's choice, which
    leaves loopback out, plus 127.0.0.1, so that a client on this machine that keeps its
    media on loopback reaches this service too)."""
    original = aioice.ice.get_host_addresses

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        if addresses is not None:
            chosen = list(addresses)
        else:
            chosen = [*original(use_ipv4, use_ipv6), "127.0.0.1"]
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses


async def set_remote(pc: RTCPeerConnection, sdp: str, kind: str) -> None:
    """Apply the client's offer or answer; one it cannot use is the client's error."""
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
    except Exception as exc:  # aiortc raises ValueError, InvalidStateError, ...
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"the {kind} cannot be used: {exc}",
            f"{kind}_sdp",
        ) from exc


def pcm_frame(pcm: bytes, pts: int) -> AudioFrame:
    frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
    frame.planes[0].update(pcm)
    frame.pts = pts
    frame.sample_rate = SAMPLE_RATE
    frame.time_base = TIME_BASE
    return frame


class PcmTrack(MediaStreamTrack):
    """The audio sent to the client: the frames `push`ed, in order, paced by whoever pushes
    them (the SIP media clock, or the prompt's player)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(SEND_QUEUE_FRAMES)
        self._pts = 0

    def push(self, pcm: bytes) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(pcm)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pcm = await self._queue.get()
        frame = pcm_frame(pcm, self._pts)
        self._pts += FRAME_SAMPLES
        return frame


class PcmSink:
    """Turns the client's decoded frames into 20 ms frames of 48 kHz mono PCM."""

    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        self._deliver = deliver
        self._resampler: AudioResampler | None = None
        self._shape: tuple[str, str, int] | None = None
        self._pending = bytearray()

    def feed(self, frame: AudioFrame) -> None:
        # A resampler takes one input shape; a new one (another codec) gets a new resampler.
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._resampler is None or shape != self._shape:
            self._resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            self._shape = shape
        for out in self._resampler.resample(frame):
            self._pending += bytes(out.planes[0])[: out.samples * 2]
        while len(self._pending) >= FRAME_BYTES:
            self._deliver(bytes(self._pending[:FRAME_BYTES]))
            del self._pending[:FRAME_BYTES]


class WebRtcLeg:
    """One client's peer connection, audio only."""

    def __init__(self, on_audio: Callable[[bytes], None], on_state: Callable[[str], None]) -> None:
        # No STUN or TURN of its own: the client gathers relay candidates where needed.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.outgoing = PcmTrack()
        self.connected = asyncio.Event()
        self._sink = PcmSink(on_audio)
        self._on_state = on_state
        self._reader: asyncio.Task[None] | None = None
        self._remote: MediaStreamTrack | None = None
        self._closed = False
        self.pc.on("connectionstatechange", self._state_changed)
        self.pc.on("track", self._track)

    async def answer(self, offer_sdp: str) -> str:
        """The SDP answer to the client's offer (with the ICE candidates)."""
        await self._set_remote(offer_sdp, "offer")
        if not any(t.kind == "audio" for t in self.pc.getTransceivers()):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "the offer has no audio", "offer_sdp"
            )
        self.pc.addTrack(self.outgoing)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        description = self.pc.localDescription
        assert description is not None
        return description.sdp

    async def offer(self) -> str:
        """An offer of audio both ways (for a call from a phone: this side calls)."""
        self.pc.addTransceiver(self.outgoing, direction="sendrecv")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        description = self.pc.localDescription
        assert description is not None
        return description.sdp

    async def accept_answer(self, answer_sdp: str) -> None:
        await self._set_remote(answer_sdp, "answer")

    async def _set_remote(self, sdp: str, kind: str) -> None:
        await set_remote(self.pc, sdp, kind)

    def send(self, pcm: bytes) -> None:
        self.outgoing.push(pcm)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.outgoing.stop()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                await self._reader
        await self.pc.close()

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.connected.set()
            self._start_reading()
        if not self._closed:
            self._on_state(state)

    def _track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._remote is None:
            self._remote = track
            if self.connected.is_set():
                self._start_reading()

    def _start_reading(self) -> None:
        if self._reader is None and self._remote is not None and not self._closed:
            self._reader = asyncio.get_running_loop().create_task(
                self._read(self._remote), name="parley leg webrtc audio"
            )

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, AudioFrame):
                    self._sink.feed(frame)
        except MediaStreamError:
            return
