"""Prometheus metrics of the push service (bounded labels only: provider, outcome, kind, and
applications through parley_service.app_label)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from parley_service.batches import BatchMetrics
from parley_service.metric_children import Children

REGISTRATIONS = Counter(
    "parley_push_registrations_total",
    "Device registrations changed, by what (push_data, managed) and action (set, clear).",
    ["what", "action"],
)
NOTIFIES = Counter(
    "parley_push_notifies_total",
    "Notify requests answered (a call or message for users with no online device), by kind.",
    ["kind"],
)
PAIRS = Counter(
    "parley_push_pairs_total",
    "Push pairs handed to callers' and senders' apps (app-server push), by kind.",
    ["kind"],
)
JOBS_ENQUEUED = Counter(
    "parley_push_jobs_enqueued_total",
    "Managed push jobs taken by the stream PUSH, by provider.",
    ["provider"],
)
JOBS = Counter(
    "parley_push_jobs_total",
    "Managed push attempts by provider, outcome (sent, dead_token, retry, failed, expired, "
    "gave_up, no_credentials) and application.",
    ["provider", "outcome", "app"],
)
SEND_SECONDS = Histogram(
    "parley_push_provider_seconds",
    "Time of one provider request, by provider.",
    ["provider"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DELAY_SECONDS = Histogram(
    "parley_push_delay_seconds",
    "Enqueued -> the provider accepted it, by provider (retries included).",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120, 600),
)
RELAYS = Counter(
    "parley_push_relays_total",
    "Payloads relayed by devices, by outcome (call, message, or the error code).",
    ["outcome"],
)
LOOKUP_METRICS = BatchMetrics(
    Counter(
        "parley_push_lookups_total",
        "Device lookups (one query for the Notify requests that came together), by outcome.",
        ["kind", "outcome"],
    ),
    Histogram(
        "parley_push_lookup_batch_size",
        "Notify requests served by one device lookup.",
        ["kind"],
        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    ),
    Histogram(
        "parley_push_lookup_seconds",
        "Time of one device lookup.",
        ["kind"],
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
    ),
)

# The children the path of every push takes, each made once (see metric_children.py).
NOTIFIES_BY, PAIRS_BY = Children(NOTIFIES), Children(PAIRS)
JOBS_ENQUEUED_BY, JOBS_BY = Children(JOBS_ENQUEUED), Children(JOBS)
SEND_SECONDS_BY, DELAY_SECONDS_BY = Children(SEND_SECONDS), Children(DELAY_SECONDS)
