"""Prometheus metrics of the gateway (labels are bounded: directions, frame types, codes,
and applications through parley_service.app_label)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily
from prometheus_client.registry import Collector

CONNECTIONS = Gauge(
    "parley_gateway_connections",
    "Open WebSocket connections (signed in or waiting for their Hello).",
)
SESSIONS = Gauge(
    "parley_gateway_sessions",
    "Signed-in client sessions (connected clients), by application (app: its key for the "
    "first PARLEY_METRICS_APP_LABELS applications seen, then other).",
    ["app"],
)


class _Count:
    """One lock-free count (the gateway's loop is its only writer)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class FrameCounts(Collector):
    """`parley_gateway_frames_total`, WebSocket frames by direction (in, out) and message
    type (`websocket_ping` and `websocket_pong` for the control frames of heartbeats: two
    per idle session and interval, the commonest thing a gateway does). Counted in plain ints and
    read at scrape time (a prometheus_client Counter takes a lock per increment)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], _Count] = {}

    def child(self, direction: str, body: str) -> _Count:
        key = (direction, body)
        count = self._counts.get(key)
        if count is None:
            count = self._counts[key] = _Count()
        return count

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "parley_gateway_frames",
            "WebSocket frames, by direction (in, out) and message type.",
            labels=["direction", "type"],
        )
        for (direction, body), count in list(self._counts.items()):
            family.add_metric([direction, body], count.value)
        yield family


FRAMES = FrameCounts()
REGISTRY.register(FRAMES)


def frames(direction: str, body: str) -> _Count:
    """The frame count of one direction and message type (the label values are bounded)."""
    return FRAMES.child(direction, body)


ERRORS = Counter(
    "parley_gateway_errors_total",
    "Error frames and error responses sent to clients, by error code.",
    ["code"],
)
DELIVERIES = Counter(
    "parley_gateway_device_events_total",
    "Device events taken from the bus, by outcome (delivered, no_session, bad_event, "
    "held_overflow: too many for a session still signing in).",
    ["outcome"],
)
ABORTS = Counter(
    "parley_gateway_aborted_connections_total",
    "Connections dropped without a closing handshake, by reason (slow_consumer: its unread "
    "output passed the cap; close_timeout: output still unread after the close; "
    "drain_deadline: still open when the drain ran out of time).",
    ["reason"],
)
REFUSALS = Counter(
    "parley_gateway_refused_total",
    "Connections and frames refused for load, by reason (max_connections, frame_rate).",
    ["reason"],
)
ROUTED = Counter(
    "parley_gateway_routed_requests_total",
    "Client requests forwarded to services, by service, body and outcome (ok or an error code).",
    ["service", "body", "outcome"],
)
ROUTED_SECONDS = Histogram(
    "parley_gateway_routed_request_seconds",
    "Time from a routed client request to its reply, by service.",
    ["service"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DROPPED = Counter(
    "parley_gateway_device_events_dropped_total",
    "Device events dropped before delivery, by reason (queue_full: the gateway's event queue "
    "was full). Counted the same way with light and with ordinary NATS subscriptions.",
    ["reason"],
)
DROPPED.labels("queue_full")  # exported as 0 from the start, so rates work before a drop
NATS_LIGHT_MODE = Gauge(
    "parley_gateway_nats_light_mode",
    "1 while device-event subscriptions use the light path (no task or queue per "
    "subscription), 0 with ordinary nats-py subscriptions (its self-test failed or nats-py "
    "lacks the internals it needs).",
)
RESUMES = Counter(
    "parley_gateway_resumes_total",
    "Hellos that asked to resume a session, by outcome (resumed, expired, refused, "
    "overflowed, disabled).",
    ["outcome"],
)
TOKEN_CHECKS = Counter(
    "parley_gateway_token_checks_total",
    "Access tokens of Hellos and refreshes checked, by how: 'signature' (in full, Ed25519 "
    "signature included) or 'known' (a resume presenting the token a gateway verified for "
    "that session: every rule but the signature).",
    ["how"],
)
EVENTS_REPLAYED = Counter(
    "parley_gateway_events_replayed_total",
    "Device events replayed to resumed sessions from the resume window.",
)
WINDOW_EVENTS = Gauge(
    "parley_gateway_event_window_messages",
    "Device events held in the resume window (stream EVENTS), as this gateway last read it.",
)
WINDOW_BYTES = Gauge(
    "parley_gateway_event_window_bytes",
    "Bytes held in the resume window (stream EVENTS), as this gateway last read it.",
)
REST_REQUESTS = Counter(
    "parley_gateway_rest_requests_total",
    "App backends' REST requests (conferences, callouts, call statistics), by route and HTTP "
    "status.",
    ["route", "status"],
)
REST_SECONDS = Histogram(
    "parley_gateway_rest_request_seconds",
    "Time to answer an app backend's REST request, signature check included, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
