"""A participant's packets on their way to the mixer: a small jitter buffer (`Inbox`), fed
by the leg (wire.Wire, or media._Intake before the wire is attached)."""

from __future__ import annotations

import bisect
from typing import Final

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


def is_quiet(payload: bytes, level: int | None) -> bool:
    """Whether a packet is known to be silent without decoding it: digital silence or DTX
    (at most SILENT_BYTES), or an audio level (-dBov, from its header extension, when the
    client sends one) quieter than QUIET_DBOV."""
    return len(payload) <= SILENT_BYTES or (level is not None and level >= QUIET_DBOV)


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
