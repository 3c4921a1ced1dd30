"""Prometheus metrics of the sip service (bounded labels only: leg kinds, outcomes and SIP
status classes)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from parley_legs.leg import LegMetrics

LEGS_LIVE = Gauge(
    "parley_sip_legs_live",
    "Remote legs this replica holds now, by kind (sip: a SIP call; test_number: the prompt).",
    ["kind"],
)
LEGS_ENDED = Counter(
    "parley_sip_legs_ended_total",
    "Remote legs ended, by kind and outcome (hung_up, caller_hung_up, sip_error, denied, "
    "media_failed, credit_exhausted, prompt_played, drained, failed).",
    ["kind", "outcome"],
)
LEG_METRICS = LegMetrics(LEGS_LIVE, LEGS_ENDED)
SIP_RESPONSES = Counter(
    "parley_sip_final_responses_total",
    "Final SIP statuses of calls placed, by class (2xx, 4xx, 5xx, 6xx).",
    ["status_class"],
)
DIALS_REFUSED = Counter(
    "parley_sip_dials_refused_total",
    "Dial requests refused before dialling, by reason (insufficient_credit, no_rate, no_trunk, "
    "domain, full, draining, invalid).",
    ["reason"],
)
