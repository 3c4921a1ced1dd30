"""Prometheus metrics of the stats service (bounded labels only: outcomes, error codes)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
