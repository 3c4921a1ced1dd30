"""Prometheus metrics of the conference service (bounded labels only)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from parley_legs.leg import LegMetrics

LEGS_LIVE = Gauge(
    "parley_conference_legs_live",
    "Participants' legs this replica holds now, by kind (participant: a user joined; "
    "callout: the application called a user in).",
    ["kind"],
)
LEGS_ENDED = Counter(
    "parley_conference_legs_ended_total",
    "Participants' legs ended, by kind and outcome (left, removed, media_lost, "
    "media_failed, caller_gone, declined, unanswered, drained, failed).",
    ["kind", "outcome"],
)
LEG_METRICS = LegMetrics(LEGS_LIVE, LEGS_ENDED)
JOINS_REFUSED = Counter(
    "parley_conference_joins_refused_total",
    "Joins refused, by reason (full, draining, elsewhere).",
    ["reason"],
)
RTP_REJECTED = Counter(
    "parley_conference_rtp_rejected_total",
    "RTP datagrams on a participant's socket that were dropped, by reason (srtp: failed its "
    "authentication or replay check; malformed; payload_type: not the negotiated Opus).",
    ["reason"],
)
