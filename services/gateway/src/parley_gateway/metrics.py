"""Prometheus metrics of the gateway (labels are bounded: directions, frame types, codes)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTIONS = Gauge(
    "parley_gateway_connections",
    "Open WebSocket connections (signed in or waiting for their Hello).",
)
FRAMES = Counter(
    "parley_gateway_frames_total",
    "WebSocket frames, by direction (in, out) and message type.",
    ["direction", "type"],
)
ERRORS = Counter(
    "parley_gateway_errors_total",
    "Error frames and error responses sent to clients, by error code.",
    ["code"],
)
DELIVERIES = Counter(
    "parley_gateway_device_events_total",
    "Device events taken from the bus, by outcome (delivered, no_session, bad_event).",
    ["outcome"],
)
