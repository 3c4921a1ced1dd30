"""Rules of call reports and aggregate windows (parley_protocol.call_reports), and the
stats service's reading of a record from its stream: each fault names its field."""

from __future__ import annotations

from typing import Any

import pytest

from parley.v1 import calls_pb2, stats_pb2
from parley_protocol.call_reports import (
    MAX_REPORT_BYTES,
    MAX_WARNINGS,
    MAX_WINDOW_MS,
    validate_call_report,
    validate_window,
)
from parley_protocol.errors import ErrorCode, ParleyError
from parley_stats.records import loss_fraction, message_id, parse_record, row_of

NOW = 1_800_000_000_000
DAY = 86_400_000
MAX_AGE = 30 * DAY
APP = "196087a1-e815-4bc4-8984-60d8d8a43f1d"
CALL = "5f0c2a1e-8d3b-4c6f-9e7a-1b2c3d4e5f60"


def report(**fields: Any) -> stats_pb2.UploadCallReport:
    """A valid report of an answered app call, with `fields` changed."""
    values: dict[str, Any] = {
        "call_id": CALL,
        "kind": calls_pb2.CALL_KIND_APP,
        "direction": stats_pb2.CALL_DIRECTION_OUTGOING,
        "remote": "bob x.*>",
        "end_cause": calls_pb2.CALL_END_CAUSE_HUNG_UP,
        "started_at_ms": NOW - 60_000,
        "setup_ms": 850,
        "ringing_ms": 3_000,
        "talk_ms": 55_000,
        "codec": "opus/48000/2",
        "rtt_ms": 42.5,
        "sent": stats_pb2.MediaStats(packets=2_750, bytes=330_000, bitrate_bps=48_000),
        "received": stats_pb2.MediaStats(packets=2_700, packets_lost=50, jitter_ms=4.2),
        "mos": 4.1,
        "warnings": {"high_rtt": 2},
    }
    values.update(fields)
    return stats_pb2.UploadCallReport(**values)


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(number: int, data: bytes) -> bytes:
    """Field `number` (unknown to the schema) holding `data`, as protobuf encodes it."""
    return varint(number << 3 | 2) + varint(len(data)) + data


def refused(message: stats_pb2.UploadCallReport) -> ParleyError:
    with pytest.raises(ParleyError) as info:
        validate_call_report(message, NOW, MAX_AGE)
    return info.value


def test_a_full_report_and_a_report_of_a_call_with_no_media_are_valid() -> None:
    full = report()
    assert validate_call_report(full, NOW, MAX_AGE) is full
    failed = stats_pb2.UploadCallReport(
        call_id=CALL,
        kind=calls_pb2.CALL_KIND_PHONE,
        direction=stats_pb2.CALL_DIRECTION_INCOMING,
        end_cause=calls_pb2.CALL_END_CAUSE_FAILURE,
        error_code="NETWORK",
        started_at_ms=NOW,
    )
    assert validate_call_report(failed, NOW, MAX_AGE) is failed
    assert validate_call_report(report(mos=1.0), NOW, MAX_AGE)
    assert validate_call_report(report(mos=4.5), NOW, MAX_AGE)
    conference = report(kind=calls_pb2.CALL_KIND_CONFERENCE, remote="daily standup ☕")
    assert validate_call_report(conference, NOW, MAX_AGE)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"call_id": "not-a-uuid"}, "call_id", "lowercase UUID"),
        ({"call_id": CALL.upper()}, "call_id", "lowercase UUID"),
        ({"kind": calls_pb2.CALL_KIND_UNSPECIFIED}, "kind", "missing"),
        ({"kind": 17}, "kind", "17"),
        ({"direction": stats_pb2.CALL_DIRECTION_UNSPECIFIED}, "direction", "missing"),
        ({"direction": 3}, "direction", "3"),
        ({"end_cause": calls_pb2.CALL_END_CAUSE_UNSPECIFIED}, "end_cause", "missing"),
        ({"end_cause": 99}, "end_cause", "99"),
        ({"remote": "x" * 257}, "remote", "257 characters"),
        ({"remote": "bob\x00"}, "remote", "printable"),
        ({"error_code": "E" * 65}, "error_code", "65 characters"),
        ({"error_code": "bad\ncode"}, "error_code", "printable ASCII"),
        ({"codec": "opus/48000/2\u00e9"}, "codec", "printable ASCII"),
        ({"codec": "c" * 65}, "codec", "65 characters"),
        ({"started_at_ms": 0}, "started_at_ms", "missing"),
        ({"started_at_ms": NOW + 11 * 60_000}, "started_at_ms", "future"),
        ({"started_at_ms": NOW - MAX_AGE - 1}, "started_at_ms", "30 days"),
        ({"setup_ms": 3_600_001}, "setup_ms", "3600001"),
        ({"ringing_ms": 3_600_001}, "ringing_ms", "limit"),
        ({"talk_ms": 7 * DAY + 1}, "talk_ms", "limit"),
        ({"rtt_ms": -1.0}, "rtt_ms", "-1.0"),
        ({"rtt_ms": float("nan")}, "rtt_ms", "nan"),
        ({"rtt_ms": float("inf")}, "rtt_ms", "inf"),
        ({"mos": 0.5}, "mos", "0.5"),
        ({"mos": 4.6}, "mos", "4.6"),
        ({"mos": -1.0}, "mos", "-1.0"),
        ({"sent": stats_pb2.MediaStats(packets=10**10 + 1)}, "sent.packets", "limit"),
        ({"sent": stats_pb2.MediaStats(bytes=10**13 + 1)}, "sent.bytes", "limit"),
        ({"sent": stats_pb2.MediaStats(bitrate_bps=100_000_001)}, "sent.bitrate_bps", "limit"),
        (
            {"received": stats_pb2.MediaStats(packets_lost=10**10 + 1)},
            "received.packets_lost",
            "limit",
        ),
        ({"received": stats_pb2.MediaStats(jitter_ms=60_001.0)}, "received.jitter_ms", "60001"),
        ({"received": stats_pb2.MediaStats(audio_level=1.5)}, "received.audio_level", "1.5"),
        ({"warnings": {"": 1}}, "warnings", "empty"),
        ({"warnings": {"w" * 65: 1}}, "warnings", "65 characters"),
        ({"warnings": {"caf\u00e9": 1}}, "warnings", "printable ASCII"),
        (
            {"warnings": {f"w{i}": 1 for i in range(MAX_WARNINGS + 1)}},
            "warnings",
            f"{MAX_WARNINGS + 1} warnings",
        ),
    ],
)
def test_each_fault_is_invalid_argument_naming_its_field(
    fields: dict[str, Any], field: str, words: str
) -> None:
    err = refused(report(**fields))
    assert (err.code, err.field) == (ErrorCode.ERROR_CODE_INVALID_ARGUMENT, field), err
    assert words in err.reason, err.reason


def test_a_report_over_the_size_limit_is_payload_too_large_whatever_else_it_holds() -> None:
    # Fields a newer client might send that this service does not know still count.
    big = report()
    big.MergeFromString(length_delimited(1000, b"x" * MAX_REPORT_BYTES))
    assert big.ByteSize() > MAX_REPORT_BYTES
    err = refused(big)
    assert (err.code, err.field) == (ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE, "report")
    assert f"limit is {MAX_REPORT_BYTES}" in err.reason


def test_windows_run_forward_and_span_at_most_31_days() -> None:
    assert validate_window(0, 1) == (0, 1)
    assert validate_window(NOW - MAX_WINDOW_MS, NOW) == (NOW - MAX_WINDOW_MS, NOW)
    cases = [
        ((NOW, NOW), "to", "after its start"),
        ((NOW, NOW - 1), "to", "after its start"),
        ((-1, NOW), "from", "before 1970"),
        ((NOW - MAX_WINDOW_MS - 1, NOW), "to", "limit is 31 days"),
    ]
    for (start, end), field, words in cases:
        with pytest.raises(ParleyError) as info:
            validate_window(start, end, "from", "to")
        assert (info.value.code, info.value.field) == (
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            field,
        )
        assert words in info.value.reason


def record(**fields: Any) -> stats_pb2.CallReportRecord:
    values: dict[str, Any] = {
        "application_key": APP,
        "user_id": "alice",
        "device_instance_id": "7d1f0c2e-1111-4c6f-9e7a-1b2c3d4e5f60",
        "received_at_ms": NOW,
        "report": report(),
    }
    values.update(fields)
    return stats_pb2.CallReportRecord(**values)


def test_a_record_from_the_stream_becomes_a_row() -> None:
    parsed = parse_record(record().SerializeToString(), MAX_AGE)
    row = row_of(parsed)
    assert (row.application_key, row.call_id, row.user_id) == (APP, CALL, "alice")
    assert row.started_at.timestamp() * 1000 == NOW - 60_000
    assert row.received_at.timestamp() * 1000 == NOW
    assert (row.kind, row.end_cause, row.setup_ms, row.mos) == (1, 1, 850, 4.1)
    assert row.jitter_ms == 4.2
    assert row.loss == pytest.approx(50 / 2_750)
    assert stats_pb2.UploadCallReport.FromString(row.report) == report()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"\xff\xff\xff", "record"),
        (record(application_key="nope").SerializeToString(), "application_key"),
        (record(user_id="").SerializeToString(), "user_id"),
        (record(device_instance_id="").SerializeToString(), "device_instance_id"),
        (record(device_instance_id="a b").SerializeToString(), "device_instance_id"),
        (record(received_at_ms=0).SerializeToString(), "received_at_ms"),
        (record(report=report(mos=9.0)).SerializeToString(), "mos"),
    ],
)
def test_a_malformed_record_is_refused_naming_its_field(data: bytes, field: str) -> None:
    with pytest.raises(ParleyError) as info:
        parse_record(data, MAX_AGE)
    assert info.value.field == field


def test_a_record_is_judged_by_the_day_it_was_received() -> None:
    """A record that waited on the stream (the database down) is not refused for its age."""
    old = record(received_at_ms=NOW - 20 * DAY, report=report(started_at_ms=NOW - 21 * DAY))
    assert parse_record(old.SerializeToString(), MAX_AGE).report.call_id == CALL


def test_loss_is_the_fraction_of_expected_packets_lost_and_ids_name_app_call_and_device() -> None:
    assert loss_fraction(stats_pb2.MediaStats()) == 0.0
    assert loss_fraction(stats_pb2.MediaStats(packets=90, packets_lost=10)) == 0.1
    assert message_id(APP, CALL, "dev-1") == f"{APP}.{CALL}.dev-1"
