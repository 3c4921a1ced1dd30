"""Rules of call statistics: what an uploaded call report (parley.v1.UploadCallReport) may
hold, and which windows of time its aggregates may be asked for.

Shared by the stats service (which refuses a report or a window that breaks them) and by
whoever builds reports or asks for aggregates (the client, the gateway's REST route), so a
report is judged by one set of rules wherever it is checked. Each rule fails with a
`ParleyError` naming the field at fault; only a report over MAX_REPORT_BYTES as a whole is
PAYLOAD_TOO_LARGE, every other fault is INVALID_ARGUMENT.
"""

from __future__ import annotations

import math

from parley.v1 import calls_pb2, stats_pb2
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.validation import validate_call_id

# The whole report, encoded: a report at every limit below fits well within it.
MAX_REPORT_BYTES = 4096
MAX_REMOTE_CHARS = 256
MAX_ERROR_CODE_CHARS = 64
MAX_CODEC_CHARS = 64
MAX_WARNINGS = 32
MAX_WARNING_NAME_CHARS = 64
# Durations in milliseconds.
MAX_SETUP_MS = 3_600_000  # an hour
MAX_RINGING_MS = 3_600_000
MAX_TALK_MS = 7 * 86_400_000  # a week
MAX_RTT_MS = 60_000.0
MAX_JITTER_MS = 60_000.0
# Counters of one direction of media (a week of video is far below these).
MAX_PACKETS = 10**10
MAX_BYTES = 10**13
MAX_BITRATE_BPS = 100_000_000
MIN_MOS, MAX_MOS = 1.0, 4.5
# How far ahead of the receiver's clock a call may say it started (devices' clocks drift).
MAX_FUTURE_START_MS = 10 * 60_000

# Aggregates are asked for at most this long a window, ending at the latest here (the end
# of the year 9999, the last a date and time can be written in).
MAX_WINDOW_MS = 31 * 86_400_000
MAX_TIME_MS = 253_402_300_800_000


def _invalid(reason: str, field: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, reason, field)


def _enum(value: int, names: dict[int, str], what: str, field: str) -> None:
    """A value of the enum other than its UNSPECIFIED (0)."""
    if value == 0:
        raise _invalid(f"{what} is missing", field)
    if value not in names:
        raise _invalid(f"{what} {value} is not one this service knows", field)


_KINDS = {v: n for n, v in calls_pb2.CallKind.items()}
_CAUSES = {v: n for n, v in calls_pb2.CallEndCause.items()}
_DIRECTIONS = {v: n for n, v in stats_pb2.CallDirection.items()}


def _text(value: str, limit: int, what: str, field: str, ascii_only: bool) -> None:
    """At most `limit` characters, no control characters (printable ASCII if `ascii_only`)."""
    if len(value) > limit:
        raise _invalid(f"{what} is {len(value)} characters long; the limit is {limit}", field)
    for index, char in enumerate(value):
        code = ord(char)
        control = code < 0x20 or 0x7F <= code < 0xA0
        if control or (ascii_only and code > 0x7E):
            kind = "printable ASCII" if ascii_only else "printable"
            raise _invalid(
                f"{what} has a character that is not {kind} ({char!r} at position {index})",
                field,
            )


def _number(value: float, low: float, high: float, what: str, field: str) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise _invalid(f"{what} is {value!r}; it must be from {low:g} to {high:g}", field)


def _count(value: int, high: int, what: str, field: str) -> None:
    if value > high:
        raise _invalid(f"{what} is {value}; the limit is {high}", field)


def _media(stats: stats_pb2.MediaStats, field: str) -> None:
    _count(stats.packets, MAX_PACKETS, "packets", f"{field}.packets")
    _count(stats.packets_lost, MAX_PACKETS, "packets lost", f"{field}.packets_lost")
    _count(stats.bytes, MAX_BYTES, "bytes", f"{field}.bytes")
    _count(stats.bitrate_bps, MAX_BITRATE_BPS, "the bitrate", f"{field}.bitrate_bps")
    _number(stats.jitter_ms, 0.0, MAX_JITTER_MS, "the jitter", f"{field}.jitter_ms")
    _number(stats.audio_level, 0.0, 1.0, "the audio level", f"{field}.audio_level")


def validate_call_report(
    report: stats_pb2.UploadCallReport, now_ms: int, max_age_ms: int
) -> stats_pb2.UploadCallReport:
    """`report` when every field is within its rules; `now_ms` is the receiver's clock and
    `max_age_ms` how long before it a reported call may have started."""
    size = report.ByteSize()
    if size > MAX_REPORT_BYTES:
        raise ParleyError(
            ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
            f"the call report is {size} bytes; the limit is {MAX_REPORT_BYTES}",
            "report",
        )
    validate_call_id(report.call_id)
    _enum(report.kind, _KINDS, "the call kind", "kind")
    _enum(report.direction, _DIRECTIONS, "the call direction", "direction")
    _enum(report.end_cause, _CAUSES, "the end cause", "end_cause")
    _text(report.remote, MAX_REMOTE_CHARS, "the remote party", "remote", ascii_only=False)
    _text(report.error_code, MAX_ERROR_CODE_CHARS, "the error code", "error_code", True)
    _text(report.codec, MAX_CODEC_CHARS, "the codec", "codec", ascii_only=True)
    if report.started_at_ms <= 0:
        raise _invalid("the call's start time is missing", "started_at_ms")
    if report.started_at_ms > now_ms + MAX_FUTURE_START_MS:
        raise _invalid(
            f"the call starts {(report.started_at_ms - now_ms) // 1000} s in the future",
            "started_at_ms",
        )
    if report.started_at_ms < now_ms - max_age_ms:
        raise _invalid(
            f"the call started over {max_age_ms // 86_400_000} days ago; reports of older "
            "calls are not taken",
            "started_at_ms",
        )
    _count(report.setup_ms, MAX_SETUP_MS, "the set-up time", "setup_ms")
    _count(report.ringing_ms, MAX_RINGING_MS, "the ringing time", "ringing_ms")
    _count(report.talk_ms, MAX_TALK_MS, "the talk time", "talk_ms")
    _number(report.rtt_ms, 0.0, MAX_RTT_MS, "the round-trip time", "rtt_ms")
    _media(report.sent, "sent")
    _media(report.received, "received")
    if report.mos != 0.0:  # 0: no media flowed
        _number(report.mos, MIN_MOS, MAX_MOS, "the MOS (0 when no media flowed)", "mos")
    if len(report.warnings) > MAX_WARNINGS:
        raise _invalid(
            f"the report names {len(report.warnings)} warnings; the limit is {MAX_WARNINGS}",
            "warnings",
        )
    for name in report.warnings:
        if not name:
            raise _invalid("a warning's name is empty", "warnings")
        _text(name, MAX_WARNING_NAME_CHARS, "a warning's name", "warnings", ascii_only=True)
    return report


def validate_window(
    from_ms: int, to_ms: int, from_field: str = "from_ms", to_field: str = "to_ms"
) -> tuple[int, int]:
    """[from, to) in milliseconds since the epoch: from before to, at most MAX_WINDOW_MS."""
    if from_ms < 0:
        raise _invalid("the window starts before 1970", from_field)
    if to_ms <= from_ms:
        raise _invalid("the window's end must be after its start", to_field)
    if to_ms > MAX_TIME_MS:
        raise _invalid("the window ends after the year 9999", to_field)
    if to_ms - from_ms > MAX_WINDOW_MS:
        raise _invalid(
            f"the window is {(to_ms - from_ms) / 86_400_000:.1f} days long; the limit is "
            f"{MAX_WINDOW_MS // 86_400_000} days",
            to_field,
        )
    return from_ms, to_ms
