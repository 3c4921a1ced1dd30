"""Call reports as the stream carries them (parley.v1.CallReportRecord) and as the table
keeps them (`ReportRow`): the conversion, and the rules a record must meet to be stored.

A record on the stream was checked when it was uploaded, but the stream takes whatever is
published on its subjects, so ingestion checks it again: a record that is unreadable or
breaks a rule is malformed, and is dropped rather than written or redelivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import DecodeError

from parley.v1 import stats_pb2
from parley_protocol.call_reports import validate_call_report
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.validation import validate_application_key, validate_user_id

MAX_INSTANCE_CHARS = 128


@dataclass(frozen=True)
class ReportRow:
    """One row of stats.call_reports."""

    application_key: str
    call_id: str
    device_instance: str
    user_id: str
    kind: int
    direction: int
    end_cause: int
    error_code: str
    remote: str
    started_at: datetime
    received_at: datetime
    setup_ms: int
    ringing_ms: int
    talk_ms: int
    codec: str
    rtt_ms: float
    jitter_ms: float
    loss: float
    mos: float
    report: bytes


def message_id(application_key: str, call_id: str, instance_id: str) -> str:
    """The stream's deduplication id of a report: one per application, call and device."""
    return f"{application_key}.{call_id}.{instance_id}"


def loss_fraction(stats: stats_pb2.MediaStats) -> float:
    """The fraction of packets lost of those that were sent to this side (0 when none)."""
    expected = stats.packets + stats.packets_lost
    return stats.packets_lost / expected if expected else 0.0


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def validate_instance(instance_id: str, field: str = "device_instance_id") -> str:
    if not instance_id or len(instance_id) > MAX_INSTANCE_CHARS:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"the device instance must be 1 to {MAX_INSTANCE_CHARS} characters",
            field,
        )
    if not all(" " < char <= "~" for char in instance_id):
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            "the device instance has a character that is not printable ASCII",
            field,
        )
    return instance_id


SENDER_FIELDS = ("application_key", "user_id", "device_instance_id")


def validate_sender(
    application_key: str, user_id: str, instance_id: str, fields: tuple[str, ...] = SENDER_FIELDS
) -> None:
    """Who sent a report (`fields` name its three parts in errors): the same checks at
    upload and at ingestion, so a report taken is never dropped later for its sender."""
    validate_application_key(application_key, fields[0])
    validate_user_id(user_id, fields[1])
    validate_instance(instance_id, fields[2])


def parse_record(data: bytes, max_age_ms: int) -> stats_pb2.CallReportRecord:
    """The record in `data`, checked; ParleyError(INVALID_ARGUMENT) saying why not."""
    record = stats_pb2.CallReportRecord()
    try:
        record.ParseFromString(data)
    except DecodeError as exc:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "not a parley.v1.CallReportRecord", "record"
        ) from exc
    validate_sender(record.application_key, record.user_id, record.device_instance_id)
    if record.received_at_ms <= 0:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            "the record has no receive time",
            "received_at_ms",
        )
    # Judged as on the day it was received: a record may wait on the stream for a while.
    validate_call_report(record.report, record.received_at_ms, max_age_ms)
    return record


def row_of(record: stats_pb2.CallReportRecord) -> ReportRow:
    report = record.report
    return ReportRow(
        application_key=record.application_key,
        call_id=report.call_id,
        device_instance=record.device_instance_id,
        user_id=record.user_id,
        kind=report.kind,
        direction=report.direction,
        end_cause=report.end_cause,
        error_code=report.error_code,
        remote=report.remote,
        started_at=_time(report.started_at_ms),
        received_at=_time(record.received_at_ms),
        setup_ms=report.setup_ms,
        ringing_ms=report.ringing_ms,
        talk_ms=report.talk_ms,
        codec=report.codec,
        rtt_ms=report.rtt_ms,
        jitter_ms=report.received.jitter_ms,
        loss=loss_fraction(report.received),
        mos=report.mos,
        report=report.SerializeToString(),
    )
