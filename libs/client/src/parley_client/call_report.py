"""The statistics of an ended call (`call.statistics`), as the client uploads them to the
stats service (`parley.v1.UploadCallReport`).

Times come from the call's details: set-up is from the start to the first of progressing
(the caller heard it ring) and established; on an incoming call, from the start (the
service's) to the moment it rang on this device. Ringing is from then to established, or to
the end of a call never established; talk is from established to ended. The media part
(codec, RTT, both directions, MOS) comes from the samples taken while the call was
established; a call with none (signalling only, or never established) has none.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from parley_client.call_details import CallDetails, CallDirection, CallEndCause, CallKind
from parley_client.call_stats import DirectionTotals, MediaSummary
from parley_client.mos import mos
from parley_protocol.pb import calls as calls_pb
from parley_protocol.pb import stats as stats_pb

_UINT32_MAX = 2**32 - 1

_KINDS = {
    CallKind.APP: calls_pb.CALL_KIND_APP,
    CallKind.PHONE: calls_pb.CALL_KIND_PHONE,
    CallKind.SIP: calls_pb.CALL_KIND_SIP,
    CallKind.CONFERENCE: calls_pb.CALL_KIND_CONFERENCE,
}
_DIRECTIONS = {
    CallDirection.OUTGOING: stats_pb.CALL_DIRECTION_OUTGOING,
    CallDirection.INCOMING: stats_pb.CALL_DIRECTION_INCOMING,
}


@dataclass(frozen=True)
class MediaStatistics:
    """One direction of a call's audio as this device measured it. `bytes` and
    `bitrate_bps` count all the call's media on the wire (RTP and RTCP of every track, with
    their headers); packets and loss are the audio's; `jitter_ms` is as the receiving side
    measured it (the far side's reports for what was sent); `audio_level` is the mean RMS
    level, 0.0 (silence) to 1.0 (full scale)."""

    packets: int
    packets_lost: int
    bytes: int
    bitrate_bps: int
    jitter_ms: float
    audio_level: float

    def to_proto(self) -> stats_pb.MediaStats:
        return stats_pb.MediaStats(
            packets=max(0, self.packets),
            packets_lost=max(0, self.packets_lost),
            bytes=max(0, self.bytes),
            bitrate_bps=_uint32(self.bitrate_bps),
            jitter_ms=_finite(self.jitter_ms),
            audio_level=_finite(self.audio_level),
        )


@dataclass(frozen=True)
class CallStatistics:
    """What a call was and how its media fared, as uploaded at its end. Durations are
    milliseconds; `sent`, `received` are None, `codec` empty and `rtt_ms`, `mos` 0 when no
    media was measured; `warnings` counts the quality warnings triggered, by kind name."""

    call_id: str
    kind: CallKind
    direction: CallDirection
    remote: str
    end_cause: CallEndCause
    error_code: str
    started_at_ms: int
    setup_ms: int
    ringing_ms: int
    talk_ms: int
    codec: str = ""
    rtt_ms: float = 0.0
    sent: MediaStatistics | None = None
    received: MediaStatistics | None = None
    mos: float = 0.0
    warnings: Mapping[str, int] = field(default_factory=dict)

    def to_proto(self) -> stats_pb.UploadCallReport:
        report = stats_pb.UploadCallReport(
            call_id=self.call_id,
            kind=_KINDS[self.kind],
            direction=_DIRECTIONS[self.direction],
            remote=self.remote,
            end_cause=self.end_cause.value,
            error_code=self.error_code,
            started_at_ms=self.started_at_ms,
            setup_ms=_uint32(self.setup_ms),
            ringing_ms=_uint32(self.ringing_ms),
            talk_ms=_uint32(self.talk_ms),
            codec=self.codec,
            rtt_ms=_finite(self.rtt_ms),
            mos=_finite(self.mos),
            warnings={name: _uint32(count) for name, count in self.warnings.items()},
        )
        if self.sent is not None:
            report.sent.CopyFrom(self.sent.to_proto())
        if self.received is not None:
            report.received.CopyFrom(self.received.to_proto())
        return report


def build_statistics(
    *,
    call_id: str,
    kind: CallKind,
    direction: CallDirection,
    remote: str,
    details: CallDetails,
    rang_at: float | None,
    media: MediaSummary | None,
    warnings: Mapping[str, int],
) -> CallStatistics:
    """The statistics of an ended call from its details, when it rang on this device
    (`rang_at`, incoming calls; None otherwise), its media totals and its warnings.
    ValueError for a call that has not ended."""
    if details.end_cause is None or details.ended_time is None:
        raise ValueError(f"call {call_id} has not ended")
    started = details.started_time
    ended = details.ended_time
    established = details.established_time
    rang = details.progressed_time if direction is CallDirection.OUTGOING else rang_at
    setup_until = rang if rang is not None else established
    ringing_until = established if established is not None else ended
    talk_ms = _ms(details.duration)
    statistics = CallStatistics(
        call_id=call_id,
        kind=kind,
        direction=direction,
        remote=remote,
        end_cause=details.end_cause,
        error_code=details.error.code if details.error is not None else "",
        started_at_ms=round(started * 1000),
        setup_ms=_ms(setup_until - started) if setup_until is not None else 0,
        ringing_ms=_ms(ringing_until - rang) if rang is not None else 0,
        talk_ms=talk_ms,
        warnings=dict(warnings),
    )
    if media is None:
        return statistics
    seconds = talk_ms / 1000
    received = media.received
    expected = received.packets + received.packets_lost
    loss_percent = 100.0 * received.packets_lost / expected if expected else 0.0
    return dataclasses.replace(
        statistics,
        codec=media.codec,
        rtt_ms=media.rtt_ms,
        sent=_direction(media.sent, seconds),
        received=_direction(received, seconds),
        mos=mos(media.rtt_ms, received.jitter_ms, loss_percent) if expected else 0.0,
    )


def _direction(totals: DirectionTotals, seconds: float) -> MediaStatistics:
    return MediaStatistics(
        packets=totals.packets,
        packets_lost=totals.packets_lost,
        bytes=totals.bytes,
        bitrate_bps=int(totals.bytes * 8 / seconds) if seconds > 0 else 0,
        jitter_ms=totals.jitter_ms,
        audio_level=totals.audio_level,
    )


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _uint32(value: int) -> int:
    return min(_UINT32_MAX, max(0, int(value)))


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0
