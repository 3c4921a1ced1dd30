"""The stats service in process on real NATS and PostgreSQL: uploads are checked, put on
the stream STATS and stored once per call and device; garbage on the stream is dropped
without stopping the reports behind it; aggregates count each call once and give set-up
and MOS percentiles over a window."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from prometheus_client import REGISTRY

from parley.v1 import calls_pb2, stats_pb2
from parley_devstack.nats import EmbeddedNats
from parley_protocol import subjects
from parley_protocol.call_reports import MAX_REPORT_BYTES
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import runtime as rt
from parley_service.bus import request
from parley_stats.app import purger_of, writers_of
from tests.support.stats import call_report, device, now_ms, stats_service, upload
from tests.support.wire import bounded, eventually

MINUTE = 60_000
HUNG_UP = calls_pb2.CALL_END_CAUSE_HUNG_UP
NO_ANSWER = calls_pb2.CALL_END_CAUSE_NO_ANSWER
OTHER_DEVICE = calls_pb2.CALL_END_CAUSE_OTHER_DEVICE_ANSWERED
INCOMING = stats_pb2.CALL_DIRECTION_INCOMING
# The stream's duplicate window in the test that outlives it.
DUPLICATE_WINDOW = 2.0


@pytest_asyncio.fixture
async def service(nats_server: EmbeddedNats, database_url: str) -> AsyncIterator[rt.Runtime]:
    async with stats_service(nats_server.url, database_url) as runtime:
        yield runtime


@pytest.fixture
def app() -> str:
    """An application key of this test alone (the stream is the session's)."""
    return str(uuid.uuid4())


async def stored(runtime: rt.Runtime, app: str) -> list[Any]:
    return list(
        await runtime.db.fetch(
            "SELECT * FROM stats.call_reports WHERE application_key = $1 ORDER BY received_at",
            app,
        )
    )


async def stored_count(runtime: rt.Runtime, app: str, count: int) -> None:
    async def enough() -> bool:
        return len(await stored(runtime, app)) >= count

    await eventually(enough, 10, f"{count} reports stored")


async def aggregate(nc: NATS, app: str, start: int, end: int) -> stats_pb2.CallAggregate:
    query = stats_pb2.CallAggregateQuery(application_key=app, from_ms=start, to_ms=end)
    return await request(nc, subjects.STATS_AGGREGATE, query, stats_pb2.CallAggregate)


def ingested(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("parley_stats_reports_ingested_total", labels) or 0.0


@bounded(30)
async def test_a_report_sent_twice_is_stored_once(
    nats_server: EmbeddedNats, database_url: str, bus: NATS, app: str
) -> None:
    async with stats_service(
        nats_server.url, database_url, stats_duplicate_window_seconds=DUPLICATE_WINDOW
    ) as service:
        await _sent_twice(service, bus, app)


async def _sent_twice(service: rt.Runtime, bus: NATS, app: str) -> None:
    alice = device(app)
    report = call_report()
    # With the writers stopped, the stream itself says the quick resend is not new.
    writers = writers_of(service)
    await writers.stop()
    assert (await upload(bus, alice, report)).stored
    assert not (await upload(bus, alice, report)).stored
    writers.start()
    await stored_count(service, app, 1)
    # Once stored, the table says so, after the stream's duplicate window too.
    await asyncio.sleep(DUPLICATE_WINDOW + 0.1)
    assert not (await upload(bus, alice, report)).stored
    # The same call from another device of the same user is a report of its own.
    assert (await upload(bus, device(app, "alice"), report)).stored
    await stored_count(service, app, 2)
    await asyncio.sleep(0.3)  # nothing more arrives
    rows = await stored(service, app)
    assert len(rows) == 2
    first = rows[0]
    assert (first["call_id"], first["user_id"], first["device_instance"]) == (
        report.call_id,
        "alice",
        alice.instance_id,
    )
    assert (first["kind"], first["end_cause"], first["setup_ms"], first["mos"]) == (
        calls_pb2.CALL_KIND_APP,
        HUNG_UP,
        800,
        pytest.approx(4.2),
    )
    assert first["loss"] == pytest.approx(25 / 2_525)
    assert first["jitter_ms"] == pytest.approx(3.0)
    assert int(first["started_at"].timestamp() * 1000) == report.started_at_ms
    assert stats_pb2.UploadCallReport.FromString(first["report"]) == report


@bounded(30)
async def test_bad_reports_get_errors_naming_the_field_and_nothing_is_stored(
    service: rt.Runtime, bus: NATS, app: str
) -> None:
    alice = device(app)
    cases: list[tuple[stats_pb2.UploadCallReport, int, str]] = [
        (call_report("CALL-1"), ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "call_id"),
        (call_report(mos=7.5), ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "mos"),
        (call_report(kind=0), ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "kind"),
        (call_report(end_cause=42), ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "end_cause"),
        (call_report(remote="r" * 300), ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "remote"),
        (call_report(talk_ms=4_000_000_000), ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "talk_ms"),
        (
            call_report(started_at_ms=now_ms() - 40 * 86_400_000),
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            "started_at_ms",
        ),
        (
            call_report(warnings={f"warning_{i}": 1 for i in range(100)}),
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            "warnings",
        ),
        (
            call_report(warnings={f"{i:060d}": 1 for i in range(80)}),
            ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
            "report",
        ),
    ]
    for report, code, field in cases:
        with pytest.raises(ParleyError) as info:
            await upload(bus, alice, report)
        assert (info.value.code, info.value.field) == (code, field), (field, info.value)
    assert cases[-1][0].ByteSize() > MAX_REPORT_BYTES
    # A caller with no device instance (a gateway's bug) is refused too.
    for sender in (device(app, instance=""), device("not a guid"), device(app, user_id="")):
        with pytest.raises(ParleyError) as info:
            await upload(bus, sender, call_report())
        assert info.value.field == "caller", sender
    # Only the valid report that follows is stored.
    good = call_report()
    assert (await upload(bus, alice, good)).stored
    await stored_count(service, app, 1)
    assert [r["call_id"] for r in await stored(service, app)] == [good.call_id]
    refused = REGISTRY.get_sample_value(
        "parley_stats_reports_received_total", {"outcome": "PAYLOAD_TOO_LARGE"}
    )
    assert refused is not None and refused >= 1


@bounded(30)
async def test_garbage_on_the_stream_is_dropped_and_the_next_report_is_stored(
    service: rt.Runtime, bus: NATS, app: str
) -> None:
    js = bus.jetstream()
    malformed = ingested("malformed")
    await js.publish(subjects.stats_reports(app), b"\xff\x00 not a record")
    bad = stats_pb2.CallReportRecord(
        application_key=app,
        user_id="mallory",
        device_instance_id="dev-1",
        received_at_ms=now_ms(),
        report=call_report(mos=99.0),
    )
    await js.publish(subjects.stats_reports(app), bad.SerializeToString())
    good = call_report()
    assert (await upload(bus, device(app), good)).stored
    await stored_count(service, app, 1)
    assert [r["call_id"] for r in await stored(service, app)] == [good.call_id]
    assert ingested("malformed") == malformed + 2
    # Terminated, not waiting to be delivered again.
    info = await js.consumer_info(subjects.STATS_STREAM, subjects.STATS_CONSUMER)
    assert info.num_ack_pending == 0


@bounded(30)
async def test_aggregates_count_each_call_once_by_kind_and_cause_within_the_window(
    service: rt.Runtime, bus: NATS, app: str
) -> None:
    start = now_ms() - 60 * MINUTE
    answered = str(uuid.uuid4())
    # One answered call: its caller, its callee, and the callee's other device report it.
    reports = [
        (device(app, "alice"), call_report(answered, started_at_ms=start, setup_ms=100)),
        (
            device(app, "bob"),
            call_report(answered, direction=INCOMING, started_at_ms=start + 5, setup_ms=200),
        ),
        (
            device(app, "bob"),
            call_report(
                answered,
                direction=INCOMING,
                end_cause=OTHER_DEVICE,
                started_at_ms=start + 5,
                setup_ms=0,
                mos=0.0,
            ),
        ),
    ]
    # Seven more calls reported by their callers: setup times 300 .. 900, MOS 3.0 .. 4.2.
    for i in range(7):
        reports.append(
            (
                device(app, "carol"),
                call_report(
                    started_at_ms=start + (i + 1) * MINUTE,
                    setup_ms=300 + 100 * i,
                    mos=3.0 + 0.2 * i,
                    end_cause=NO_ANSWER if i == 6 else HUNG_UP,
                    kind=calls_pb2.CALL_KIND_PHONE if i >= 5 else calls_pb2.CALL_KIND_APP,
                ),
            )
        )
    # A call outside the window (its end is exclusive).
    late = start + 30 * MINUTE
    reports.append((device(app, "dave"), call_report(started_at_ms=late, setup_ms=5_000)))
    for caller, report in reports:
        assert (await upload(bus, caller, report)).stored
    await stored_count(service, app, len(reports))

    result = await aggregate(bus, app, start, late)
    assert (result.application_key, result.from_ms, result.to_ms) == (app, start, late)
    counts = {(c.kind, c.end_cause): c.calls for c in result.counts}
    assert counts == {
        (calls_pb2.CALL_KIND_APP, HUNG_UP): 6,  # the answered call counted once
        (calls_pb2.CALL_KIND_PHONE, HUNG_UP): 1,
        (calls_pb2.CALL_KIND_PHONE, NO_ANSWER): 1,
    }
    assert result.reports == 10
    # Set-up over the 9 reports that measured it: 100, 200, 300, ..., 900.
    assert result.setup_ms.samples == 9
    assert result.setup_ms.p50 == pytest.approx(500)
    assert result.setup_ms.p90 == pytest.approx(820)
    assert result.setup_ms.p99 == pytest.approx(892)
    # MOS over the 9 reports with media (4.2 twice for the answered call, 3.0 .. 4.2).
    assert result.mos.samples == 9
    assert result.mos.p50 == pytest.approx(3.8)
    # A window holding only the late call; one holding nothing.
    only_late = await aggregate(bus, app, late, late + 1)
    assert only_late.reports == 1 and only_late.setup_ms.p50 == pytest.approx(5_000)
    empty = await aggregate(bus, app, start - 10 * MINUTE, start)
    assert (empty.reports, list(empty.counts), empty.setup_ms.samples) == (0, [], 0)
    assert empty.mos.p50 == 0.0
    # Another application sees none of it.
    assert (await aggregate(bus, str(uuid.uuid4()), start, late)).reports == 0


@bounded(30)
async def test_a_bad_window_gets_an_error_naming_the_field(service: rt.Runtime, bus: NATS) -> None:
    app, now = str(uuid.uuid4()), now_ms()
    cases = [
        (app, now, now, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "to_ms"),
        (app, now, now - 1, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "to_ms"),
        (app, now - 32 * 86_400_000, now, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "to_ms"),
        (app, -5, now, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "from_ms"),
        ("nope", now - 1, now, ErrorCode.ERROR_CODE_INVALID_APPLICATION_KEY, "application_key"),
    ]
    for key, start, end, code, field in cases:
        with pytest.raises(ParleyError) as info:
            await aggregate(bus, key, start, end)
        assert (info.value.code, info.value.field) == (code, field), info.value


@bounded(60)
async def test_two_replicas_share_the_stream_and_store_every_report_once(
    nats_server: EmbeddedNats, database_url: str, service: rt.Runtime, bus: NATS, app: str
) -> None:
    async with stats_service(nats_server.url, database_url):
        reports = [call_report() for _ in range(200)]
        callers = [device(app) for _ in reports]
        answers = await asyncio.gather(
            *(upload(bus, c, r) for c, r in zip(callers, reports, strict=True))
        )
        assert all(a.stored for a in answers)
        await stored_count(service, app, 200)
    rows = await stored(service, app)
    assert sorted(r["call_id"] for r in rows) == sorted(r.call_id for r in reports)


@bounded(30)
async def test_a_report_the_database_refuses_is_dropped_and_the_rest_of_its_batch_stored(
    service: rt.Runtime, bus: NATS, app: str
) -> None:
    await service.db.execute(
        "ALTER TABLE stats.call_reports ADD CONSTRAINT no_poison CHECK (remote <> 'poison')"
    )
    malformed = ingested("malformed")
    writers = writers_of(service)
    await writers.stop()  # the three reports go into one batch
    reports = [call_report(), call_report(remote="poison"), call_report()]
    for report in reports:
        assert (await upload(bus, device(app), report)).stored
    writers.start()
    await stored_count(service, app, 2)
    await eventually(_async(lambda: ingested("malformed") == malformed + 1), 10, "the drop")
    rows = await stored(service, app)
    assert sorted(r["call_id"] for r in rows) == sorted([reports[0].call_id, reports[2].call_id])
    info = await bus.jetstream().consumer_info(subjects.STATS_STREAM, subjects.STATS_CONSUMER)
    assert info.num_ack_pending == 0


@bounded(30)
async def test_reports_wait_on_the_stream_while_the_table_cannot_be_written(
    service: rt.Runtime, bus: NATS, app: str
) -> None:
    """A failure that is not the reports' fault (here: the table gone) loses none of them;
    uploads are taken meanwhile (the stream is their record)."""
    await service.db.execute("ALTER TABLE stats.call_reports RENAME TO call_reports_away")
    reports = [call_report(), call_report()]
    for report in reports:
        assert (await upload(bus, device(app), report)).stored
    js = bus.jetstream()

    async def handed_back() -> bool:
        info = await js.consumer_info(subjects.STATS_STREAM, subjects.STATS_CONSUMER)
        return info.num_redelivered >= 1

    await eventually(handed_back, 10, "a batch handed back and delivered again")
    await service.db.execute("ALTER TABLE stats.call_reports_away RENAME TO call_reports")
    await stored_count(service, app, 2)
    rows = await stored(service, app)
    assert sorted(r["call_id"] for r in rows) == sorted(r.call_id for r in reports)


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run


@bounded(30)
async def test_reports_older_than_the_retention_are_purged(
    service: rt.Runtime, bus: NATS, app: str
) -> None:
    alice = device(app)
    old, recent = call_report(started_at_ms=now_ms() - 20 * MINUTE), call_report()
    await upload(bus, alice, old)
    await upload(bus, alice, recent)
    await stored_count(service, app, 2)
    retention = service.settings.stats_retention_seconds  # type: ignore[attr-defined]
    # As of a time when the first call's start is just past the retention, the second's not.
    as_of = (old.started_at_ms + 10 * MINUTE) / 1000 + retention
    assert await purger_of(service).purge(as_of) >= 1
    assert [r["call_id"] for r in await stored(service, app)] == [recent.call_id]
