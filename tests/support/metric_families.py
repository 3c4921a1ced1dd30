"""The metric families each service must export, by their exposed names (a counter's with
`_total`), and those that carry the bounded `app` label (parley_service.app_label).

tests/e2e/test_metrics.py checks every service's /metrics against this table;
tests/unit/test_grafana_dashboards.py checks that dashboards use only declared families,
taking a service's families from here until its code is in the tree. A new service adds
one line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exported:
    """What one service exports: `families` always (a labelled family with no series yet
    shows as its HELP and TYPE), and `by_app`, families whose series all have an `app`
    label and that have series once the service saw traffic."""

    families: frozenset[str]
    by_app: frozenset[str] = frozenset()


def exported(*families: str, by_app: tuple[str, ...] = ()) -> Exported:
    return Exported(frozenset(families) | frozenset(by_app) | COMMON, frozenset(by_app))


# Every service: the runtime's and the default process collector's.
COMMON = frozenset(
    {
        "parley_service_info",
        "parley_bus_requests_total",
        "parley_bus_request_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    }
)

# Call quality, exported by the stats service (app and kind labels on the histograms).
STATS = (
    "parley_stats_reports_ingested_total",
    "parley_stats_mos",
    "parley_stats_rtt_seconds",
    "parley_stats_jitter_seconds",
    "parley_stats_packet_loss_ratio",
)

SERVICES: dict[str, Exported] = {
    "auth": exported("parley_auth_registrations_total", "parley_auth_tokens_issued_total"),
    "gateway": exported(
        "parley_gateway_connections",
        "parley_gateway_routed_requests_total",
        "parley_gateway_routed_request_seconds",
        "parley_gateway_nats_light_mode",
        "parley_gateway_event_window_messages",
        "parley_gateway_event_window_bytes",
        by_app=("parley_gateway_sessions",),
    ),
    "calls": exported(
        "parley_calls_in_phase",
        "parley_calls_setup_seconds",
        by_app=("parley_calls_started_total", "parley_calls_ended_total"),
    ),
    "messaging": exported(
        "parley_messaging_messages_refused_total",
        "parley_messaging_commit_seconds",
        by_app=(
            "parley_messaging_messages_accepted_total",
            "parley_messaging_delivered_total",
            "parley_messaging_messages_failed_total",
        ),
    ),
    "push": exported("parley_push_jobs_enqueued_total", by_app=("parley_push_jobs_total",)),
    "sip": exported(
        "parley_sip_final_responses_total", "parley_sip_legs_live", "parley_sip_legs_ended_total"
    ),
    "conference": exported(
        "parley_conference_rooms",
        "parley_conference_participants",
        "parley_conference_mixer_late_frames_total",
        "parley_conference_mixer_frames_sent_total",
        "parley_conference_legs_live",
    ),
    "stats": exported(*STATS),
}
