"""The stats service's requests.

upload_call_report: a device's report of a call that ended (routed client body, for a
                    verified caller): checked, put on the stream STATS, then answered
aggregate:          an application's aggregates over a window (parley.stats.aggregate,
                    from the gateway's REST route)

Whether an upload is new (`CallReportAccepted.stored`) is decided in two steps: a report
already in the table is answered at once and not published again; otherwise the stream
says whether it had this application's, call's and device's record within its duplicate
window. A resend later than that window, of a report not written yet (the database down
that long), is taken as new once more; the table keeps one row all the same.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from parley.v1 import stats_pb2
from parley_protocol import subjects
from parley_protocol.call_reports import validate_call_report, validate_window
from parley_protocol.clock import Clock, now_ms
from parley_protocol.errors import ParleyError
from parley_protocol.validation import validate_application_key
from parley_service.bus import Bus
from parley_service.client_requests import Caller
from parley_service.db import is_unavailable
from parley_service.logs import get_logger
from parley_stats import store
from parley_stats.metrics import REPORTS_RECEIVED
from parley_stats.records import validate_sender
from parley_stats.settings import StatsSettings
from parley_stats.stream import ReportStream

log = get_logger("parley.stats.handlers")

# How long an upload asks the table whether the report is there before it relies on the
# stream alone (a slow, absent or failing database does not stop reports being taken).
EXISTS_TIMEOUT_SECONDS = 1.0


def declare_endpoints(bus: Bus, handlers: StatsHandlers) -> None:
    bus.client_endpoint(stats_pb2.UploadCallReport, handlers.upload_call_report)
    bus.endpoint(
        subjects.STATS_AGGREGATE,
        stats_pb2.CallAggregateQuery,
        handlers.aggregate,
        subjects.STATS_QUEUE,
    )


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class StatsHandlers:
    def __init__(
        self, settings: StatsSettings, db: store.Db, reports: ReportStream, clock: Clock
    ) -> None:
        self._db = db
        self._reports = reports
        self._clock = clock
        self._max_age_ms = int(settings.stats_report_max_age_seconds * 1000)

    async def upload_call_report(
        self, caller: Caller, report: stats_pb2.UploadCallReport
    ) -> stats_pb2.CallReportAccepted:
        try:
            stored = await self._upload(caller, report)
        except ParleyError as err:
            REPORTS_RECEIVED.labels(err.code_name).inc()
            raise
        REPORTS_RECEIVED.labels("accepted" if stored else "duplicate").inc()
        return stats_pb2.CallReportAccepted(stored=stored)

    async def _upload(self, caller: Caller, report: stats_pb2.UploadCallReport) -> bool:
        now = now_ms(self._clock)
        who = (caller.application_key, caller.user_id, caller.instance_id)
        validate_sender(*who, fields=("caller",) * 3)
        validate_call_report(report, now, self._max_age_ms)
        if await self._stored_before(caller, report.call_id):
            return False
        record = stats_pb2.CallReportRecord(
            application_key=caller.application_key,
            user_id=caller.user_id,
            device_instance_id=caller.instance_id,
            received_at_ms=now,
            report=report,
        )
        return await self._reports.publish(record)

    async def _stored_before(self, caller: Caller, call_id: str) -> bool:
        try:
            return await asyncio.wait_for(
                store.report_exists(self._db, caller.application_key, call_id, caller.instance_id),
                EXISTS_TIMEOUT_SECONDS,
            )
        except Exception as exc:  # the stream takes reports whatever the table's state
            if is_unavailable(exc):
                log.warning("stored_check_skipped", error=repr(exc))
            else:
                log.error("stored_check_skipped", error=repr(exc))
            return False

    async def aggregate(self, query: stats_pb2.CallAggregateQuery) -> stats_pb2.CallAggregate:
        validate_application_key(query.application_key)
        validate_window(query.from_ms, query.to_ms)
        start, end = _time(query.from_ms), _time(query.to_ms)
        async with self._db.acquire() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                counts = await store.call_counts(conn, query.application_key, start, end)
                quality = await store.quality(conn, query.application_key, start, end)
        return stats_pb2.CallAggregate(
            application_key=query.application_key,
            from_ms=query.from_ms,
            to_ms=query.to_ms,
            counts=[
                stats_pb2.CallCount(
                    kind=c.kind,  # type: ignore[arg-type]
                    end_cause=c.end_cause,  # type: ignore[arg-type]
                    calls=c.calls,
                )
                for c in counts
            ],
            setup_ms=_percentiles(quality.setup_ms),
            mos=_percentiles(quality.mos),
            reports=quality.reports,
        )


def _percentiles(q: store.Quantiles) -> stats_pb2.Percentiles:
    if not q.values:
        return stats_pb2.Percentiles(samples=q.samples)
    p50, p90, p99 = q.values
    return stats_pb2.Percentiles(samples=q.samples, p50=p50, p90=p90, p99=p99)
