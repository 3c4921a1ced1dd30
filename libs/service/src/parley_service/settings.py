"""Typed settings from `PARLEY_*` environment variables: defaults in code, env on top.

A service declares a dataclass (extending `ServiceSettings`); each field `foo_bar` is read
from `PARLEY_FOO_BAR` and converted to the field's type. A value that does not convert is
a start-up error that names the variable.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from collections.abc import Mapping
from typing import Any, TypeVar, get_type_hints

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
    db_pool_max: int = 10

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
        settings = cls(**values)
        if settings.environment not in ("sandbox", "production"):
            raise SettingsError(
                "PARLEY_ENVIRONMENT must be 'sandbox' or 'production', "
                f"not {settings.environment!r}"
            )
        return settings


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
