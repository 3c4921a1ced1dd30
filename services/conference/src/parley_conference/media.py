"""One participant's WebRTC peer connection at packet level, audio only.

The mixer works on Opus packets, so a leg neither decodes what it receives nor encodes what
it sends; aiortc would do both, one decoder thread per received track (each frame handed
back to the event loop) and an encode per sent frame, which alone would cost more than the
mixing. Once the connection is up, the leg's RTP goes through `wire.Wire`, both ways, by
plain calls on the event loop (see wire.py). Beside it, reaching into aiortc 1.16's receiver
and sender (the version is pinned):

- Receiving, before the wire is attached (the first packets can come before the leg hears
  that its connection is up): the receiver's jitter buffer is replaced by an intake that
  puts each RTP packet's payload into the participant's `Inbox` (on the event loop, no
  thread) and hands aiortc nothing to decode; its decoder queue by one whose `get()` ends
  the decoder thread as soon as it starts. RTCP stays aiortc's: receiver reports still go
  out (the client's RTT and loss figures), from statistics the wire keeps as aiortc does.
- Sending: aiortc's sender is given a track that yields nothing, so its task waits idle;
  it still sends the sender reports, from the counts the wire keeps.

Only Opus is offered and accepted (the mixer decodes nothing else).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from parley_conference.inbox import Inbox, is_quiet
from parley_conference.wire import Wire, WireError
from parley_legs.webrtc import set_remote
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.logs import get_logger

log = get_logger("parley.conference.media")

# aiortc 1.16's receiver attributes this module replaces (name-mangled privates).
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"


class _Intake:
    """Stands in for the receiver's jitter buffer: each packet goes to the inbox as it
    comes, and aiortc is given no frame to decode."""

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self.capacity = 16  # read by nothing in 1.16; kept for the interface's sake

    def add(self, packet: Any) -> tuple[bool, None]:
        payload: bytes = packet._data  # set by the receiver (Opus: the payload as is)
        level = packet.extensions.audio_level  # (voice, -dBov) when the client sends it
        self._inbox.push(
            packet.sequence_number, payload, is_quiet(payload, None if level is None else level[1])
        )
        return False, None

    def remove(self, count: int) -> None:
        return None

    def smart_remove(self, count: int) -> bool:
        return False


class _NoDecoding:
    """Stands in for the receiver's decoder queue: `get()` tells the decoder thread to end
    (it does so as soon as it starts), `put()` drops what aiortc would have decoded (only
    its end-of-stream marker reaches it: the intake hands it no frame)."""

    def get(self, *args: object, **kwargs: object) -> None:
        return None

    def put(self, item: object, *args: object, **kwargs: object) -> None:
        return None


def _take_over_receiver(receiver: RTCRtpReceiver, inbox: Inbox) -> None:
    for name in (_JITTER_BUFFER, _DECODER_QUEUE, _DECODER_THREAD):
        if not hasattr(receiver, name):  # another aiortc than the one this was written for
            raise RuntimeError(f"aiortc's receiver has no {name}: the media core needs 1.16")
    setattr(receiver, _JITTER_BUFFER, _Intake(inbox))
    setattr(receiver, _DECODER_QUEUE, _NoDecoding())


def decoder_thread_running(receiver: RTCRtpReceiver) -> bool:
    """Whether aiortc's decoder thread of this receiver is still alive (it should end as
    soon as it starts; the tests check it does)."""
    thread = getattr(receiver, _DECODER_THREAD, None)
    return thread is not None and bool(thread.is_alive())


class IdleTrack(MediaStreamTrack):
    """The track aiortc's sender is given: it yields nothing (the wire sends), so the
    sender's task waits until the track stops."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._stopped = asyncio.Event()

    async def recv(self) -> Any:
        await self._stopped.wait()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._stopped.set()


def _opus_only() -> list[Any]:
    capabilities = RTCRtpSender.getCapabilities("audio")
    assert capabilities is not None
    return [c for c in capabilities.codecs if c.mimeType.lower() == "audio/opus"]


class MediaLeg:
    """One participant's peer connection at packet level (audio only): what it sends waits
    in `inbox`, what it hears is pushed to `outgoing` (sent at once, once connected)."""

    def __init__(self, on_state: Callable[[str], None]) -> None:
        # No STUN or TURN of its own: the client gathers relay candidates where needed.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.connected = asyncio.Event()
        self.inbox = Inbox()
        self.outgoing = Wire(self.inbox)
        self._track = IdleTrack()
        self._on_state = on_state
        self._transceiver: RTCRtpTransceiver | None = None
        self._closed = False
        self.pc.on("connectionstatechange", self._state_changed)

    @property
    def receiver(self) -> RTCRtpReceiver | None:
        return self._transceiver.receiver if self._transceiver is not None else None

    def _audio(self) -> RTCRtpTransceiver:
        """The one audio transceiver, made before any description is set: aiortc gives it
        the offer's first audio m-line (it reuses a transceiver of that kind with no mid)."""
        if self._transceiver is None:
            transceiver = self.pc.addTransceiver(self._track, direction="sendrecv")
            transceiver.setCodecPreferences(_opus_only())
            _take_over_receiver(transceiver.receiver, self.inbox)
            self._transceiver = transceiver
        return self._transceiver

    async def answer(self, offer_sdp: str) -> str:
        """The SDP answer to the client's offer (with the ICE candidates)."""
        audio = self._audio()
        await self._set_remote(offer_sdp, "offer")
        if audio.mid is None:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "the offer has no audio", "offer_sdp"
            )
        # Anything else offered (video, a second audio) is declined: aiortc would decode it.
        for other in self.pc.getTransceivers():
            if other is not audio:
                other.direction = "inactive"
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        description = self.pc.localDescription
        assert description is not None
        return description.sdp

    async def offer(self) -> str:
        """An offer of audio both ways (this side calls: a callout to a user's devices)."""
        self._audio()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        description = self.pc.localDescription
        assert description is not None
        return description.sdp

    async def accept_answer(self, answer_sdp: str) -> None:
        await self._set_remote(answer_sdp, "answer")

    async def _set_remote(self, sdp: str, kind: str) -> None:
        await set_remote(self.pc, sdp, kind)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.outgoing.detach()
        self._track.stop()
        await self.pc.close()

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self._transceiver is not None and not self._closed:
            try:
                self.outgoing.attach(self._transceiver)
            except WireError:
                log.exception("conference_wire_failed")
                state = "failed"  # the participant could neither hear nor be heard
            else:
                self.connected.set()
        else:
            self.outgoing.detach()
        if not self._closed:
            self._on_state(state)
