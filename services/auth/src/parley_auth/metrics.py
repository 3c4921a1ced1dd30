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
CREDIT_RESERVATIONS = Counter(
    "parley_auth_credit_reservations_total",
    "Credit reservations for calls to phones, by outcome (granted, insufficient, no_rate).",
    ["outcome"],
)
CREDIT_SETTLEMENTS = Counter(
    "parley_auth_credit_settlements_total",
    "Calls settled, by who settled them (settle: the sip service; sweep: the expiry sweeper).",
    ["by"],
)
CREDIT_SETTLED_AMOUNT = Counter(
    "parley_auth_credit_settled_amount_total",
    "Charged for calls to phones, in micro-units of the accounts' currencies, by who settled.",
    ["by"],
)
REQUEST_SIGNATURES = Counter(
    "parley_auth_request_signatures_total",
    "App backends' REST request signatures checked, by outcome (ok or an error code name).",
    ["outcome"],
)
