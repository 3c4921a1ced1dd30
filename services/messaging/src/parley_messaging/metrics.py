"""Prometheus metrics of the messaging service (bounded labels only: error codes, the kind
of a write, the kind of an event, and applications through parley_service.app_label)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from parley_service.batches import BatchMetrics

MESSAGES_ACCEPTED = Counter(
    "parley_messaging_messages_accepted_total",
    "Messages accepted (committed; a retried send is not counted again), by application.",
    ["app"],
)
MESSAGES_REFUSED = Counter(
    "parley_messaging_messages_refused_total",
    "Sends refused, by error code (nothing was stored).",
    ["code"],
)
MESSAGES_FAILED = Counter(
    "parley_messaging_messages_failed_total",
    "Sends that failed (answered with an error, nothing stored: the ones counted by code in "
    "parley_messaging_messages_refused_total), by application.",
    ["app"],
)
DELIVERED = Counter(
    "parley_messaging_delivered_total",
    "Messages delivered to a recipient (a first device of the recipient acknowledged it, or "
    "the recipient read it), by application.",
    ["app"],
)
READ = Counter(
    "parley_messaging_read_total",
    "Messages read by a recipient (the first MarkRead of the recipient).",
)
FETCHES = Counter(
    "parley_messaging_fetches_total",
    "FetchMessages answered.",
)
FETCHED = Counter(
    "parley_messaging_fetched_messages_total",
    "Messages given in FetchMessages replies.",
)
COMMITS = Counter(
    "parley_messaging_commits_total",
    "Batched transactions, by kind (messages, acks, reads) and outcome (ok, unavailable, "
    "failed, cancelled).",
    ["kind", "outcome"],
)
COMMIT_BATCH_SIZE = Histogram(
    "parley_messaging_commit_batch_size",
    "Requests written in one transaction, by kind (messages, acks, reads).",
    ["kind"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
COMMIT_SECONDS = Histogram(
    "parley_messaging_commit_seconds",
    "Time to write and commit one batch, by kind (messages, acks, reads).",
    ["kind"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
COMMIT_METRICS = BatchMetrics(COMMITS, COMMIT_BATCH_SIZE, COMMIT_SECONDS)
EVENTS_FAILED = Counter(
    "parley_messaging_events_failed_total",
    "Device events the resume window did not take, by body (what they told stands; "
    "messages are fetched again).",
    ["body"],
)
PURGED = Counter(
    "parley_messaging_purged_total",
    "Messages deleted after the retention time.",
)
RETOLD = Counter(
    "parley_messaging_retold_total",
    "Events told again by the redelivery sweeper, by kind (message: incoming and sent of a "
    "message never told; delivered, read: receipts never told; incoming: an undelivered "
    "message to an online recipient).",
    ["kind"],
)
REDELIVER_ROUNDS = Counter(
    "parley_messaging_redeliver_rounds_total",
    "Rounds of the redelivery sweeper, by outcome (ok, failed).",
    ["outcome"],
)
