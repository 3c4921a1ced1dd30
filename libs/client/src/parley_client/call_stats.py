"""A call's media statistics, read from aiortc (`RTCPeerConnection.getStats()`).

What aiortc 1.x fills in, and what is taken from it (audio streams only):

- outbound-rtp (`RTCOutboundRtpStreamStats`): packetsSent (and bytesSent: payload octets).
- inbound-rtp (`RTCInboundRtpStreamStats`): packetsReceived, packetsLost (expected by
  sequence numbers less received) and jitter (RFC 3550, in RTP timestamp units: divided by
  the codec's clock rate here). It has no bytes and no audio level.
- remote-inbound-rtp (`RTCRemoteInboundRtpStreamStats`, from the far side's receiver
  reports): packetsLost and jitter of what this side sent, and roundTripTime (seconds,
  smoothed; None until a report echoes the last sender report).
- transport (`RTCTransportStats`, one per peer connection: aiortc bundles every track):
  bytesSent and bytesReceived of all the call's media on the wire (RTP and RTCP, headers
  included), the bytes of the report.

The codec is the first of the answer's audio codecs ("opus/48000/2"); audio levels are
measured by the media itself (`audio_level.LevelMeter`). Counters start again with each peer
connection (a media restart makes a new one), so `MediaTotals` keeps each connection's last
reading and adds them up.

Importing this module does not import aiortc.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from parley_client.audio_level import LevelTally

if TYPE_CHECKING:
    from parley_client.media import PeerMedia


@dataclass(frozen=True)
class MediaReading:
    """One reading of a peer connection's counters (each counts from its start) and gauges.
    `at` is the event loop's time of the reading, in seconds."""

    at: float
    codec: str = ""
    packets_sent: int = 0
    bytes_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    bytes_received: int = 0
    jitter_ms: float = 0.0  # of the audio received
    rtt_ms: float | None = None
    remote_packets_lost: int = 0  # of the audio sent, as the far side reported
    remote_jitter_ms: float | None = None
    level_received: LevelTally = field(default_factory=LevelTally)
    level_sent: LevelTally = field(default_factory=LevelTally)


@dataclass(frozen=True)
class Codec:
    name: str  # "opus/48000/2"
    clock_rate: int


def negotiated_codec(pc: Any) -> Codec | None:
    """The audio codec of a negotiated peer connection: the first one its answer lists."""
    from aiortc.sdp import SessionDescription

    for description in (pc.localDescription, pc.remoteDescription):
        if description is None or description.type != "answer":
            continue
        try:
            parsed = SessionDescription.parse(description.sdp)
        except Exception:  # an answer aiortc took is parsed again: never expected to fail
            return None
        for media in parsed.media:
            if media.kind == "audio" and media.rtp.codecs:
                codec = media.rtp.codecs[0]
                return Codec(str(codec), int(codec.clockRate))
    return None


async def read_media(media: PeerMedia, at: float, codec: Codec | None) -> MediaReading | None:
    """A reading of `media`'s peer connection (None once it is closed, or when aiortc cannot
    give one)."""
    pc = media.pc
    if pc.connectionState == "closed":
        return None
    try:
        report = await pc.getStats()
    except Exception:  # a connection closing under the reading: no reading
        return None
    clock = codec.clock_rate if codec is not None and codec.clock_rate > 0 else 48_000
    values: dict[str, Any] = {}
    for stats in report.values():
        kind = getattr(stats, "kind", None)
        if stats.type == "transport":
            values["bytes_sent"] = values.get("bytes_sent", 0) + stats.bytesSent
            values["bytes_received"] = values.get("bytes_received", 0) + stats.bytesReceived
        elif kind != "audio":
            continue
        elif stats.type == "outbound-rtp":
            values["packets_sent"] = stats.packetsSent
        elif stats.type == "inbound-rtp":
            values["packets_received"] = stats.packetsReceived
            values["packets_lost"] = max(0, stats.packetsLost)
            values["jitter_ms"] = 1000.0 * stats.jitter / clock
        elif stats.type == "remote-inbound-rtp":
            values["remote_packets_lost"] = max(0, stats.packetsLost)
            values["remote_jitter_ms"] = 1000.0 * stats.jitter / clock
            if stats.roundTripTime is not None:
                with contextlib.suppress(TypeError, ValueError):
                    values["rtt_ms"] = max(0.0, 1000.0 * float(stats.roundTripTime))
    return MediaReading(
        at=at,
        codec=codec.name if codec is not None else "",
        level_received=media.level_received.tally(),
        level_sent=media.level_sent.tally(),
        **values,
    )


@dataclass(frozen=True)
class DirectionTotals:
    """One direction of a call's media over every peer connection it had."""

    packets: int
    packets_lost: int
    bytes: int
    jitter_ms: float  # mean of the readings that had one
    audio_level: float  # mean of the levels measured


@dataclass(frozen=True)
class MediaSummary:
    codec: str
    rtt_ms: float  # mean of the readings that had one (0: none had)
    sent: DirectionTotals
    received: DirectionTotals


class _Mean:
    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def add(self, value: float | None) -> None:
        if value is not None:
            self.total += value
            self.count += 1

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else 0.0


class MediaTotals:
    """Every reading of a call's media, added up: the last counters of each peer connection
    (`source`: the media object read), and the means of the gauges over all readings."""

    def __init__(self) -> None:
        self._last: list[tuple[object, MediaReading]] = []  # by source, oldest first
        self._rtt = _Mean()
        self._jitter = _Mean()
        self._remote_jitter = _Mean()
        self._codec = ""

    def add(self, reading: MediaReading, source: object) -> None:
        for index, (known, _) in enumerate(self._last):
            if known is source:
                self._last[index] = (source, reading)
                break
        else:
            self._last.append((source, reading))
        self._rtt.add(reading.rtt_ms)
        if reading.packets_received > 0:
            self._jitter.add(reading.jitter_ms)
        self._remote_jitter.add(reading.remote_jitter_ms)
        if reading.codec:
            self._codec = reading.codec

    def summary(self) -> MediaSummary | None:
        """The totals (None when nothing was read: no media part in the report)."""
        if not self._last:
            return None
        last = [reading for _, reading in self._last]
        received_level = sum((r.level_received for r in last), LevelTally())
        sent_level = sum((r.level_sent for r in last), LevelTally())
        return MediaSummary(
            codec=self._codec,
            rtt_ms=self._rtt.value,
            sent=DirectionTotals(
                packets=sum(r.packets_sent for r in last),
                packets_lost=sum(r.remote_packets_lost for r in last),
                bytes=sum(r.bytes_sent for r in last),
                jitter_ms=self._remote_jitter.value,
                audio_level=sent_level.mean,
            ),
            received=DirectionTotals(
                packets=sum(r.packets_received for r in last),
                packets_lost=sum(r.packets_lost for r in last),
                bytes=sum(r.bytes_received for r in last),
                jitter_ms=self._jitter.value,
                audio_level=received_level.mean,
            ),
        )
