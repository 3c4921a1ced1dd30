"""Typed settings from `PARLEY_*` environment variables: defaults in code, env on top.

A service declares a dataclass (extending `ServiceSettings`); each field `foo_bar` is read
from `PARLEY_FOO_BAR` and converted to the field's type. A value that does not convert is
a start-up error that names the variable.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import Any, TypeVar, get_type_hints

from parley_service import app_label

PREFIX = "PARLEY_"

S = TypeVar("S", bound="ServiceSettings")


class SettingsError(ValueError):
    pass


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclasses.dataclass(frozen=True)
class ServiceSettings:
    service_name: str = "parley"
    nats_url: str = "nats://127.0.0.1:4222"
    database_url: str = ""
    environment: str = "sandbox"
    health_host: str = "127.0.0.1"
    health_port: int = 0
    log_level: str = "INFO"
    log_format: str = "json"
    instance_id: str = dataclasses.field(default_factory=_default_instance_id)
    drain_timeout_seconds: float = 20.0
    otel_exporter: str = ""  # "" (spans kept in process only) or "console"
    # An OTLP/HTTP collector (e.g. http://collector:4318): spans are exported to its
    # /v1/traces. Empty: no export, and no span is recorded.
    otlp_endpoint: str = ""
    # The share of traces recorded while exporting, decided from the trace id alone, so
    # every service keeps or drops the same traces.
    trace_sample_ratio: float = 1.0
    db_pool_max: int = 10
    # How long start-up waits for NATS and PostgreSQL before giving up with a clear error.
    startup_timeout_seconds: float = 60.0
    # Servers each file-stored JetStream stream is replicated over (3 in a production cluster).
    jetstream_replicas: int = 1
    # How often a service checks that its JetStream assets are still there.
    asset_check_seconds: float = 5.0
    # Device events are kept this long in the resume window (stream EVENTS), so a client
    # that reconnects (to any gateway) misses none; 0 turns the window off (events at most
    # once). Every service of a deployment must agree: publishers then wait for the window.
    event_window_seconds: float = 120.0
    # Bus requests a replica serves at once; one more is answered UNAVAILABLE at once (its
    # client retries later, with backoff) rather than queued behind work its caller may
    # give up on: under overload a replica keeps its throughput instead of collapsing.
    # Requests that start new work (endpoints declared sheds_first) are shed from three
    # quarters of it on, so requests that finish accepted work still get through.
    max_concurrent_requests: int = 1000
    # Applications named in the `app` label of metrics (the first ones seen; later ones are
    # "other"); 0: one value, "all" (see parley_service.app_label).
    metrics_app_labels: int = app_label.DEFAULT_LIMIT
    # Apply this service's database migrations (under the same advisory lock as at start),
    # then exit: what a deployment's migration job runs before the services start.
    migrate_only: bool = False

    def __post_init__(self) -> None:
        """Refuse values that would fail later, naming the variable (subclasses call this)."""
        if self.environment not in ("sandbox", "production"):
            raise SettingsError(
                f"PARLEY_ENVIRONMENT must be 'sandbox' or 'production', not {self.environment!r}"
            )
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError(
                f"PARLEY_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {self.log_level!r}"
            )
        if self.log_format not in ("json", "text"):
            raise SettingsError(f"PARLEY_LOG_FORMAT must be json or text, not {self.log_format!r}")
        if not 0 <= self.health_port <= 65535:
            raise SettingsError(f"PARLEY_HEALTH_PORT must be 0..65535, not {self.health_port}")
        if self.db_pool_max < 1:
            raise SettingsError(f"PARLEY_DB_POOL_MAX must be at least 1, not {self.db_pool_max}")
        positive("PARLEY_DRAIN_TIMEOUT_SECONDS", self.drain_timeout_seconds)
        positive("PARLEY_STARTUP_TIMEOUT_SECONDS", self.startup_timeout_seconds)
        positive("PARLEY_ASSET_CHECK_SECONDS", self.asset_check_seconds)
        if not 0 <= self.event_window_seconds <= 86_400:  # also refuses NaN
            raise SettingsError(
                "PARLEY_EVENT_WINDOW_SECONDS must be 0 (off) to 86400, not "
                f"{self.event_window_seconds!r}"
            )
        if self.max_concurrent_requests < 1:
            raise SettingsError(
                "PARLEY_MAX_CONCURRENT_REQUESTS must be at least 1, not "
                f"{self.max_concurrent_requests}"
            )
        if self.metrics_app_labels < 0:
            raise SettingsError(
                "PARLEY_METRICS_APP_LABELS must be 0 (one value for all applications) or more, "
                f"not {self.metrics_app_labels}"
            )
        if self.otel_exporter not in ("", "console"):
            raise SettingsError(
                f"PARLEY_OTEL_EXPORTER must be empty or console, not {self.otel_exporter!r}"
            )
        if self.otlp_endpoint:
            url = urllib.parse.urlsplit(self.otlp_endpoint)
            if url.scheme not in ("http", "https") or not url.hostname or url.query:
                raise SettingsError(
                    "PARLEY_OTLP_ENDPOINT must be an http:// or https:// URL of an OTLP/HTTP "
                    f"collector (e.g. http://collector:4318), not {self.otlp_endpoint!r}"
                )
        if not 0 <= self.trace_sample_ratio <= 1:  # also refuses NaN
            raise SettingsError(
                f"PARLEY_TRACE_SAMPLE_RATIO must be 0 to 1, not {self.trace_sample_ratio!r}"
            )
        if not 1 <= self.jetstream_replicas <= 5:
            raise SettingsError(
                f"PARLEY_JETSTREAM_REPLICAS must be 1 to 5, not {self.jetstream_replicas}"
            )

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str] | None = None) -> S:
        env = os.environ if env is None else env
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = PREFIX + field.name.upper()
            if name not in env:
                continue
            values[field.name] = _convert(name, env[name], hints[field.name])
        return cls(**values)


def positive(name: str, value: float) -> None:
    """A finite number above zero, or a SettingsError naming the variable."""
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{name} must be a positive number, not {value!r}")


def _convert(name: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        return raw
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from exc
