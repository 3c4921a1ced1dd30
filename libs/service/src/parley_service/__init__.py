"""Parley service runtime: settings, NATS, Postgres, health, metrics, tracing, shutdown."""

from parley_service.bus import Bus
from parley_service.runtime import Migrations, Runtime, main, run, start, stop
from parley_service.settings import ServiceSettings

__all__ = ["Bus", "Migrations", "Runtime", "ServiceSettings", "main", "run", "start", "stop"]
