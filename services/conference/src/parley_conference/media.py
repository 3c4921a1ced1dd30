"""One participant's WebRTC peer connection at packet level, audio only.

The mixer works on Opus packets, so a leg neither decodes what it receives nor encodes what
it sends; aiortc would do both, one decoder thread per received track (each frame handed
back to the event loop) and an encode per sent frame, which alone would cost more than the
mixing. So, reaching into aiortc 1.16's receiver and sender (the version is pinned):

- Receiving: the receiver's jitter buffer is replaced by an intake that puts each RTP
  packet's payload into the participant's `Inbox` (on the event loop, no thread) and hands
  aiortc nothing to decode; its decoder queue by one whose `get()` ends the decoder thread
  as soon as it starts. RTCP stays aiortc's: receiver reports still go out (the client's
  RTT and loss figures), as the receiver's statistics are kept before the jitter buffer.
- Sending: the track yields `EncodedFrame`s (pts, time_base, bytes), which aiortc's sender
  packs into RTP as they are instead of encoding; sequence numbers, timestamps, SSRC and
  SRTP stay the sender's, so the same packet bytes can go to many listeners.

Only Opus is offered and accepted (the mixer decodes nothing else).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import fractions
from collections.abc import Callable
from typing import Any, Final

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from parley_legs.webrtc import set_remote
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.logs import get_logger

log = get_logger("parley.conference.media")

SAMPLE_RATE: Final = 48_000
FRAME_SAMPLES: Final = 960
TIME_BASE: Final = fractions.Fraction(1, SAMPLE_RATE)
# Packets waiting for the sender; beyond this the oldest goes (latency is worse than a gap).
SEND_QUEUE_FRAMES: Final = 3
# The jitter buffer: play once this many frames wait, hold at most CAPACITY (the oldest
# goes beyond), conceal at most CONCEAL frames of an empty buffer before going silent.
INBOX_START: Final = 2
INBOX_CAPACITY: Final = 4
INBOX_CONCEAL: Final = 2
# A packet whose audio-level header extension says it is quieter than this (-dBov), or of
# at most SILENT_BYTES (Opus's digital silence and DTX frames), is taken as silent without
# decoding it (see Received.quiet).
QUIET_DBOV: Final = 50
SILENT_BYTES: Final = 3

# aiortc 1.16's receiver attributes this module replaces (name-mangled privates).
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"


class Received:
    """One packet from the participant: its payload and whether it is known to be quiet
    (so the mixer need not decode it unless the participant is speaking)."""

    __slots__ = ("payload", "quiet", "seq")

    def __init__(self, seq: int, payload: bytes, quiet: bool) -> None:
        self.seq = seq  # extended (unwrapped) RTP sequence number
        self.payload = payload
        self.quiet = quiet


# What `Inbox.pop` returns for a frame to conceal (a packet late or lost).
LOST: Final = Received(-1, b"", False)


class Inbox:
    """A participant's packets waiting for the mixer: a small jitter buffer.

    Packets are kept in sequence order; one that comes after a later one was already played
    (too late) or twice is dropped. Playing starts once `start` packets wait; beyond
    `capacity` the oldest is dropped (the sender's clock runs fast, or a burst came). When a
    tick finds it empty (a packet late or lost), `pop` says LOST up to `conceal` times in a
    row (the mixer conceals), then None (silence) until `start` packets wait again. A
    sequence gap is not waited for: the next packet plays, so a lost packet costs no
    latency.
    """

    def __init__(
        self, start: int = INBOX_START, capacity: int = INBOX_CAPACITY, conceal: int = INBOX_CONCEAL
    ) -> None:
        if not 1 <= start <= capacity:
            raise ValueError("an inbox starts with 1 to `capacity` packets")
        self.start = start
        self.capacity = capacity
        self.conceal = conceal
        self._keys: list[int] = []
        self._packets: list[Received] = []
        self._highest: int | None = None  # the highest extended sequence number seen
        self._played = -1  # the extended sequence number last played
        self._playing = False
        self._misses = 0
        # Counts, for the metrics and the tests.
        self.received = 0
        self.dropped = 0  # the oldest, beyond capacity
        self.discarded = 0  # too late, or a duplicate
        self.concealed = 0

    def __len__(self) -> int:
        return len(self._packets)

    @property
    def playing(self) -> bool:
        return self._playing

    def push(self, seq: int, payload: bytes, quiet: bool = False) -> None:
        """A packet as it came (`seq`: its 16-bit RTP sequence number)."""
        self.received += 1
        key = self._extend(seq)
        if key <= self._played:
            self.discarded += 1
            return
        at = bisect.bisect_left(self._keys, key)
        if at < len(self._keys) and self._keys[at] == key:
            self.discarded += 1
            return
        self._keys.insert(at, key)
        self._packets.insert(at, Received(key, payload, quiet))
        if len(self._packets) > self.capacity:
            del self._keys[0]
            del self._packets[0]
            self.dropped += 1

    def _extend(self, seq: int) -> int:
        if self._highest is None:
            self._highest = seq
            return seq
        delta = (seq - self._highest) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        key = self._highest + delta
        if key > self._highest:
            self._highest = key
        return key

    def pop(self) -> Received | None:
        """The next packet to play, LOST (conceal one frame) or None (nothing to play)."""
        if not self._playing:
            if len(self._packets) < self.start:
                return None
            self._playing = True
        if self._packets:
            self._misses = 0
            del self._keys[0]
            packet = self._packets.pop(0)
            self._played = packet.seq
            return packet
        self._misses += 1
        if self._misses <= self.conceal:
            self.concealed += 1
            return LOST
        self._playing = False
        self._misses = 0
        return None

    def clear(self) -> None:
        """Forget what waits (a muted participant): play starts afresh once packets come."""
        if self._packets:
            self._played = self._packets[-1].seq
            self._keys.clear()
            self._packets.clear()
        self._playing = False
        self._misses = 0


class _Intake:
    """Stands in for the receiver's jitter buffer: each packet goes to the inbox as it
    comes, and aiortc is given no frame to decode."""

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self.capacity = 16  # read by nothing in 1.16; kept for the interface's sake

    def add(self, packet: Any) -> tuple[bool, None]:
        payload: bytes = packet._data  # set by the receiver (Opus: the payload as is)
        level = packet.extensions.audio_level  # (voice, -dBov) when the client sends it
        quiet = len(payload) <= SILENT_BYTES or (level is not None and level[1] >= QUIET_DBOV)
        self._inbox.push(packet.sequence_number, payload, quiet)
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


class EncodedFrame:
    """A packet for aiortc's sender to send as it is: it reads `pts` and `time_base` (the
    RTP timestamp) and `bytes()` (the payload)."""

    __slots__ = ("payload", "pts")
    time_base = TIME_BASE

    def __init__(self, payload: bytes, pts: int) -> None:
        self.payload = payload
        self.pts = pts

    def __bytes__(self) -> bytes:
        return self.payload


class PacketTrack(MediaStreamTrack):
    """What the participant hears: the packets `push`ed (one a mixer tick), each with the
    track's own timestamp (its frame count x 960), paced by whoever pushes them."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pending: collections.deque[bytes] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._frames = 0
        self.dropped = 0

    def push(self, payload: bytes) -> None:
        self._pending.append(payload)
        if len(self._pending) > SEND_QUEUE_FRAMES:
            self._pending.popleft()
            self.dropped += 1
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> EncodedFrame:  # type: ignore[override]  # a packet, not a frame
        while not self._pending:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        if self.readyState != "live":
            raise MediaStreamError
        frame = EncodedFrame(self._pending.popleft(), self._frames * FRAME_SAMPLES)
        self._frames += 1
        return frame

    def stop(self) -> None:
        super().stop()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _opus_only() -> list[Any]:
    capabilities = RTCRtpSender.getCapabilities("audio")
    assert capabilities is not None
    return [c for c in capabilities.codecs if c.mimeType.lower() == "audio/opus"]


class MediaLeg:
    """One participant's peer connection at packet level (audio only): what it sends waits
    in `inbox`, what it hears is pushed to `outgoing`."""

    def __init__(self, on_state: Callable[[str], None]) -> None:
        # No STUN or TURN of its own: the client gathers relay candidates where needed.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.connected = asyncio.Event()
        self.inbox = Inbox()
        self.outgoing = PacketTrack()
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
            transceiver = self.pc.addTransceiver(self.outgoing, direction="sendrecv")
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
        self.outgoing.stop()
        await self.pc.close()

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.connected.set()
        if not self._closed:
            self._on_state(state)
