"""The audio mixer of a replica's rooms: every 20 ms, each participant hears all the others.

One asyncio task ticks for every room of the replica on a monotonic schedule (tick k is due
at start + k x 20 ms; a tick that cannot keep up is skipped and its frames count late).
Each tick, in each room:

1. Each unmuted participant's next packet is taken from its inbox (inbox.Inbox, a small
   jitter buffer) and decoded; a packet late or lost is concealed by the decoder. Not
   decoded at all: a packet known to be quiet while the participant is not speaking, and
   while every place in the mix (step 3) is held, the packets of those without one.
2. A participant speaks while its frame's level is above SPEAKING_LEVEL, and for
   HANGOVER_FRAMES after (so a word's tail and the gaps between words are kept).
3. Only speakers are mixed, at most MAX_SPEAKERS of them (those already mixed keep their
   place while they speak, the loudest of the others take free ones), in int32: `total`
   is their sum. A mixed speaker hears total - itself, encoded with its own encoder;
   everyone else (the listeners, the muted, those not yet sending, speakers left out)
   hears `total` itself, encoded once for the room and the same bytes sent to each (their
   RTP sequence numbers and timestamps stay their own: the wire adds them). With no one
   to hear, the cached silent packet is sent. Whoever hears one speaker alone (the
   listeners while one speaks, each of two speakers) is sent that speaker's packet as it
   came, with no encode: the usual meeting, one voice at a time, then costs no encode.
4. Each mix goes through a Limiter on its way to int16: never past full scale, never
   clipped flat, quiet mixes untouched.

So a room costs a decode per unmuted participant sending sound (at most MAX_SPEAKERS while
they all hold their places), one encode per mixed speaker and one for the room: at most
four encodes a tick however many listen or talk, and none while at most one speaks (one
while two do).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np

from parley_conference.inbox import LOST, Inbox
from parley_conference.mixer_metrics import MixerStats
from parley_conference.opus import FRAME_SAMPLES, OpusDecoder, OpusEncoder, OpusError, silent_packet
from parley_service.logs import get_logger

__all__ = ["Limiter", "Mixer", "MixerStats", "VoiceActivity"]

log = get_logger("parley.conference.mixer")

Pcm = np.ndarray[Any, np.dtype[np.int16]]
Mix = np.ndarray[Any, np.dtype[np.int32]]

FULL_SCALE: Final = 32767
# A frame is speech when its mean absolute level is above this (about -50 dBFS: over a
# headset's noise floor after the browser's noise suppression, far under speech).
SPEAKING_LEVEL: Final = 100
# Frames a participant still counts as speaking after its last loud one (300 ms).
HANGOVER_FRAMES: Final = 15
# At most this many speakers of a room are mixed at once (None: all). Beyond three voices
# at once no one follows anyway; each costs an encode a tick, so without a cap a room where
# everyone talks costs an encode per participant (measured: 100 such participants need
# more than a core).
MAX_SPEAKERS: Final = 3
# A tick this many frames behind its due time is skipped (with the ones between).
MAX_BEHIND_FRAMES: Final = 3


class Outgoing(Protocol):
    def push(self, payload: bytes) -> None: ...


class Endpoint(Protocol):
    """What the mixer needs of a participant's leg (media.MediaLeg is one)."""

    @property
    def inbox(self) -> Inbox: ...

    @property
    def outgoing(self) -> Outgoing: ...

    @property
    def connected(self) -> asyncio.Event: ...


class Limiter:
    """Brings a mix to int16 without wrapping or clipping it flat, and leaves quiet mixes
    untouched (bit for bit: the common case costs one peak check).

    Two stages. A gain, set once a frame from the frame's peak: when the peak would pass
    `ceiling` the gain comes down to bring it there within the frame's first ATTACK_SAMPLES
    (2 ms: a ramp from the last frame's gain, so no step and no click); afterwards it
    recovers towards 1 by `release` of the distance a frame (~0.3 s), ramped over the
    frame. Then a soft knee above `knee`: samples beyond it are bent by tanh towards full
    scale, which they approach but do not pass; only the first 2 ms of a frame that jumps
    far over full scale come near it, before the gain is down.
    """

    def __init__(
        self,
        ceiling: float = 0.89 * FULL_SCALE,  # -1 dBFS
        knee: float = 0.75 * FULL_SCALE,
        release: float = 0.07,
    ) -> None:
        if not 0 < knee < ceiling <= FULL_SCALE:
            raise ValueError("a limiter needs 0 < knee < ceiling <= full scale")
        self.ceiling = ceiling
        self.knee = knee
        self.release = release
        self.gain = 1.0
        self._knee_int = int(knee)
        self._span = FULL_SCALE - knee

    def process(self, mix: Mix) -> tuple[Pcm, bool]:
        """The mix as int16, and whether it was turned down."""
        peak = max(int(mix.max()), -int(mix.min()))
        if self.gain == 1.0 and peak <= self._knee_int:
            return mix.astype(np.int16), False
        start = self.gain
        target = min(1.0, self.ceiling / peak) if peak else 1.0
        end = target if target < start else min(target, start + (1.0 - start) * self.release)
        if end > 0.999:
            end = 1.0
        self.gain = end
        ramp = _ATTACK if end < start else _RELEASE
        scaled = mix * (start + (end - start) * ramp)
        magnitude = np.abs(scaled)
        over = magnitude > self.knee
        if over.any():
            bent = self.knee + self._span * np.tanh((magnitude[over] - self.knee) / self._span)
            scaled[over] = np.copysign(bent, scaled[over])
        return scaled.astype(np.int16), end < 1.0 or bool(over.any())


ATTACK_SAMPLES: Final = 96
# How far each sample of a frame is along the gain's change, coming down and going back up.
_ATTACK: Final = np.minimum(1.0, (np.arange(FRAME_SAMPLES) + 1.0) / ATTACK_SAMPLES)
_RELEASE: Final = (np.arange(FRAME_SAMPLES) + 1.0) / FRAME_SAMPLES


class VoiceActivity:
    """Whether a participant is speaking: a loud frame starts it at once; it lasts
    `hangover` frames past the last loud one."""

    def __init__(self, hangover: int = HANGOVER_FRAMES) -> None:
        self.hangover = hangover
        self._left = 0

    @property
    def active(self) -> bool:
        return self._left > 0

    def update(self, loud: bool) -> bool:
        """One frame's verdict; whether the participant speaks in it."""
        if loud:
            self._left = self.hangover + 1
        elif self._left > 0:
            self._left -= 1
        return self._left > 0

    def reset(self) -> None:
        self._left = 0


def level(pcm: Pcm) -> int:
    """A frame's mean absolute sample value (cheap, and enough to tell speech from not)."""
    return int(np.abs(pcm.astype(np.int32)).sum()) // len(pcm)


@dataclass(eq=False)
class _Participant:
    name: str
    leg: Endpoint
    decoder: OpusDecoder = field(default_factory=OpusDecoder)
    voice: VoiceActivity = field(default_factory=VoiceActivity)
    limiter: Limiter = field(default_factory=Limiter)
    encoder: OpusEncoder | None = None  # its own mix's, made when it is first mixed
    muted: bool = False
    mixed: bool = False  # in this tick's mix (a speaker with a place in it)
    # This tick's packet as it came, when its frame was decoded from it (not concealed):
    # what those who hear this speaker alone are sent as it is.
    packet: bytes | None = None


@dataclass(eq=False)
class _Room:
    name: str
    participants: dict[str, _Participant] = field(default_factory=dict)
    encoder: OpusEncoder = field(default_factory=OpusEncoder)  # the listeners' shared mix
    limiter: Limiter = field(default_factory=Limiter)


class Mixer:
    """Mixes the audio of every room of this replica (see the module's doc)."""

    def __init__(self, *, frame_ms: int = 20, max_speakers: int | None = MAX_SPEAKERS) -> None:
        if frame_ms != 20:
            raise ValueError("the mixer works in 20 ms frames")  # Opus and the inbox do
        if max_speakers is not None and max_speakers < 1:
            raise ValueError("at least one speaker is mixed")
        self.frame_seconds = frame_ms / 1000
        self.max_speakers = max_speakers
        self.stats = MixerStats()
        self._rooms: dict[str, _Room] = {}
        self._silent = silent_packet()
        self._task: asyncio.Task[None] | None = None
        self._failed_rooms: set[str] = set()  # logged once each

    # -- membership ------------------------------------------------------------------------

    def join(self, room: str, participant: str, leg: Endpoint) -> None:
        """Add a participant (again: its old leg is replaced) to a room, made on first use."""
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room(room)
        state.participants[participant] = _Participant(participant, leg)

    def leave(self, room: str, participant: str) -> None:
        """Remove a participant; the room's state goes with its last participant."""
        state = self._rooms.get(room)
        if state is None:
            return
        state.participants.pop(participant, None)
        if not state.participants:
            del self._rooms[room]
            self._failed_rooms.discard(room)

    def set_muted(self, room: str, participant: str, muted: bool) -> None:
        """A muted participant is neither decoded nor mixed; it still hears the others."""
        state = self._rooms.get(room)
        member = state.participants.get(participant) if state is not None else None
        if member is None or member.muted == muted:
            return
        member.muted = muted
        member.voice.reset()
        member.leg.inbox.clear()
        if not muted:
            member.decoder.reset()  # its last sound is long past

    def participants(self) -> int:
        return sum(len(room.participants) for room in self._rooms.values())

    def rooms(self) -> int:
        return len(self._rooms)

    def speaking(self, room: str) -> list[str]:
        """The room's participants speaking now (mixed or not)."""
        state = self._rooms.get(room)
        if state is None:
            return []
        return [p.name for p in state.participants.values() if p.voice.active]

    def mixed(self, room: str) -> list[str]:
        """The room's speakers in its last mix (at most max_speakers)."""
        state = self._rooms.get(room)
        if state is None:
            return []
        return [p.name for p in state.participants.values() if p.mixed]

    # -- the clock ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="mixer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.frame_seconds
        start = loop.time()
        tick = 0
        while True:
            due = start + tick * period
            now = loop.time()
            if now < due:
                await asyncio.sleep(due - now)
                now = loop.time()
            behind = math.floor((now - due) / period)
            if behind >= MAX_BEHIND_FRAMES:
                # Catch up: the frames of the ticks left out are never sent.
                self.stats.skipped_ticks += behind
                self.stats.late_frames += behind * self.participants()
                tick += behind
                due = start + tick * period
            sent = self.mix_once()
            handed = loop.time()
            self.stats.busy_seconds += handed - now
            if handed > due + period:
                self.stats.late_frames += sent
            tick += 1

    # -- one tick ----------------------------------------------------------------------------

    def mix_once(self) -> int:
        """Mix one frame of every room and hand it to the participants; the frames sent."""
        self.stats.ticks += 1
        sent = 0
        for room in list(self._rooms.values()):
            try:
                sent += self._mix_room(room)
            except Exception:  # one room's fault must not silence the others
                self.stats.errors += 1
                if room.name not in self._failed_rooms:
                    self._failed_rooms.add(room.name)
                    log.exception("conference_mix_failed", room=room.name)
        return sent

    def _mix_room(self, room: _Room) -> int:
        stats = self.stats
        limit = self.max_speakers
        # While every place in the mix is held, no one else can be heard: their packets are
        # not decoded (see _pass_over).
        full = limit is not None and sum(m.mixed for m in room.participants.values()) >= limit
        # Who speaks this tick, with the frame and its level.
        active: list[tuple[_Participant, Pcm, int]] = []
        for member in room.participants.values():
            if full and not member.mixed:
                self._pass_over(member)
                continue
            pcm = self._take(member)
            if pcm is None:
                member.mixed = False
                continue
            loudness = level(pcm)
            if member.voice.update(loudness >= SPEAKING_LEVEL):
                active.append((member, pcm, loudness))
            else:
                member.mixed = False
        if limit is not None and len(active) > limit:
            # Those mixed last tick keep the floor while they speak; the loudest of the
            # others take the places left.
            active.sort(key=lambda a: (not a[0].mixed, -a[2]))
            for member, _, _ in active[limit:]:
                member.mixed = False
            del active[limit:]
        speakers: list[tuple[_Participant, Mix]] = []
        for member, pcm, _ in active:
            member.mixed = True
            speakers.append((member, pcm.astype(np.int32)))
        silent = self._silent
        total: Mix | None = None
        if speakers:
            total = speakers[0][1].copy()
            for _, frame in speakers[1:]:
                total += frame
        own_frames = {member.name: frame for member, frame in speakers}
        # The listeners' mix, encoded when the first of them is served; with one speaker,
        # its packet as it came (see _alone).
        shared: bytes | None = silent if total is None else self._alone(speakers, None)
        sent = 0
        for member in room.participants.values():
            leg = member.leg
            if not leg.connected.is_set():
                continue
            if not member.mixed:
                if shared is None:
                    assert total is not None
                    shared = self._encode(room.encoder, room.limiter, total)
                    stats.shared_encoded += 1
                payload = shared
            elif len(speakers) == 1:
                payload = silent  # the only speaker: no one else to hear
            else:
                forwarded = self._alone(speakers, member)
                if forwarded is not None:
                    payload = forwarded
                else:
                    assert total is not None
                    if member.encoder is None:
                        member.encoder = OpusEncoder()
                    mix = total - own_frames[member.name]
                    payload = self._encode(member.encoder, member.limiter, mix)
            if payload is silent:
                stats.silent_sent += 1
            leg.outgoing.push(payload)
            sent += 1
        stats.frames_sent += sent
        return sent

    def _alone(
        self, speakers: list[tuple[_Participant, Mix]], hearing: _Participant | None
    ) -> bytes | None:
        """When whoever `hearing` is (None: a listener) hears one speaker alone, that
        speaker's packet as it came, to send on with no encode (None: it must be mixed).
        A lone voice needs no mixing: its packet carries what the mix would, and it is
        under full scale already (the limiter would leave it be). A frame the decoder
        concealed has no packet: it is encoded as a mix is."""
        others = [member for member, _ in speakers if member is not hearing]
        if len(others) != 1 or others[0].packet is None:
            return None
        self.stats.forwarded += 1
        return others[0].packet

    def _take(self, member: _Participant) -> Pcm | None:
        """The participant's frame of this tick (None: nothing to hear from it)."""
        member.packet = None
        inbox = member.leg.inbox
        if member.muted:
            if len(inbox):
                inbox.clear()
            return None
        packet = inbox.pop()
        if packet is None:
            member.voice.update(False)
            return None
        try:
            if packet is LOST:
                if not member.voice.active:
                    return None  # nothing of it was being heard: nothing to conceal
                self.stats.concealed += 1
                return member.decoder.conceal()
            if packet.quiet and not member.voice.active:
                self.stats.quiet_skipped += 1
                member.voice.update(False)
                return None
            self.stats.decoded += 1
            pcm = member.decoder.decode(packet.payload)
            member.packet = packet.payload
            return pcm
        except OpusError:
            return None  # a packet that is not Opus: taken as silence

    def _pass_over(self, member: _Participant) -> None:
        """Take the participant's packet of this tick without decoding it (it would not be
        heard): whether it speaks is then only what the packet says of itself (its audio
        level, or its being a silence packet); its decoder takes the gap as lost packets."""
        inbox = member.leg.inbox
        if member.muted:
            if len(inbox):
                inbox.clear()
            return
        packet = inbox.pop()
        if packet is None or packet is LOST:
            member.voice.update(False)
            return
        self.stats.unmixed_skipped += 1
        member.voice.update(not packet.quiet)

    def _encode(self, encoder: OpusEncoder, limiter: Limiter, mix: Mix) -> bytes:
        pcm, limited = limiter.process(mix)
        if limited:
            self.stats.limited += 1
        self.stats.encoded += 1
        return encoder.encode(pcm)
