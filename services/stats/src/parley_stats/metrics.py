"""Prometheus metrics of the stats service (bounded labels only: outcomes, error codes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

from parley_protocol.pb import calls as calls_pb
from parley_service.app_label import app_label

if TYPE_CHECKING:
    from parley_stats.records import ReportRow

REPORTS_RECEIVED = Counter(
    "parley_stats_reports_received_total",
    "Call reports uploaded, by outcome: accepted (new), duplicate (this device's report of "
    "the call was taken before), or the error code it was refused with.",
    ["outcome"],
)
REPORTS_INGESTED = Counter(
    "parley_stats_reports_ingested_total",
    "Reports taken from the stream STATS, by outcome: stored, duplicate (already stored), "
    "malformed (unreadable or breaking the rules: dropped).",
    ["outcome"],
)
PURGED = Counter(
    "parley_stats_reports_purged_total",
    "Stored reports deleted for their age (PARLEY_STATS_RETENTION_SECONDS).",
)
BATCH_SIZE = Histogram(
    "parley_stats_ingest_batch_size",
    "Reports written in one transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
INSERT_SECONDS = Histogram(
    "parley_stats_insert_seconds",
    "Time to write one batch of reports (its transaction).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# Call quality of the reports stored (each device's report once; reports with no media, MOS
# 0, are left out), by application (bounded: parley_service.app_label) and call kind.
_QUALITY_LABELS = ["app", "kind"]
MOS = Histogram(
    "parley_stats_mos",
    "E-model MOS of the calls reported (1.0 to 4.5).",
    _QUALITY_LABELS,
    buckets=(1.0, 1.5, 2.0, 2.5, 3.0, 3.3, 3.6, 3.8, 4.0, 4.2, 4.3, 4.4, 4.5),
)
RTT_SECONDS = Histogram(
    "parley_stats_rtt_seconds",
    "Mean round-trip time of the media path of the calls reported.",
    _QUALITY_LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 1, 2),
)
JITTER_SECONDS = Histogram(
    "parley_stats_jitter_seconds",
    "Jitter of the media received in the calls reported.",
    _QUALITY_LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5),
)
PACKET_LOSS_RATIO = Histogram(
    "parley_stats_packet_loss_ratio",
    "Share of the packets lost on their way to the reporting device.",
    _QUALITY_LABELS,
    buckets=(0.0, 0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0),
)


def observe_quality(row: ReportRow) -> None:
    """Count a newly stored report's call quality (nothing for a report with no media)."""
    if row.mos <= 0:
        return
    kind = calls_pb.CallKind.Name(row.kind).removeprefix("CALL_KIND_").lower()
    labels = (app_label(row.application_key), kind)
    MOS.labels(*labels).observe(row.mos)
    RTT_SECONDS.labels(*labels).observe(row.rtt_ms / 1000)
    JITTER_SECONDS.labels(*labels).observe(row.jitter_ms / 1000)
    PACKET_LOSS_RATIO.labels(*labels).observe(row.loss)
