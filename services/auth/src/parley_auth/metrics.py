"""Prometheus metrics of the auth service (bounded labels only)."""

from __future__ import annotations

from prometheus_client import Counter

REGISTRATIONS = Counter(
    "parley_auth_registrations_total",
    "User registrations, by scheme and outcome (ok or an error code name).",
    ["scheme", "outcome"],
)
TOKENS_ISSUED = Counter(
    "parley_auth_tokens_issued_total",
    "Access tokens issued (at registration and on refresh).",
)
