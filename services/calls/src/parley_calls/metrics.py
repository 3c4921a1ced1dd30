"""Prometheus metrics of the calls service (bounded labels only: kinds, phases, end causes,
and applications through parley_service.app_label)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS_STARTED = Counter(
    "parley_calls_started_total",
    "Calls started (a record created; a retried StartCall is not counted again), by kind "
    "(app, phone, sip, conference) and application.",
    ["kind", "app"],
)
CALLS_ENDED = Counter(
    "parley_calls_ended_total",
    "Calls ended, by cause (hung_up, denied, canceled, no_answer, timeout, failure, inactive, "
    "removed) and application.",
    ["cause", "app"],
)
CALLS_IN_PHASE = Gauge(
    "parley_calls_in_phase",
    "Calls in the bucket by phase (initiating, ringing, answered, ended: lingering), as this "
    "replica's sweeper sees them; every replica sees every call, so aggregate with max.",
    ["phase"],
)
SETUP_SECONDS = Histogram(
    "parley_calls_setup_seconds",
    "Time from a call's start to its answer, by kind.",
    ["kind"],
    buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90),
)
EVENTS_FAILED = Counter(
    "parley_calls_events_failed_total",
    "Call events the resume window did not take (the call's state changed all the same).",
)
