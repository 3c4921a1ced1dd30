"""Composition root of the stats service: settings, the stream STATS and its consumer, the
handlers of uploads and aggregate queries, and the writers that store reports."""

from __future__ import annotations

from parley_service.db import Migrations
from parley_service.logs import get_logger
from parley_service.retention import Purger
from parley_service.runtime import Runtime
from parley_stats import store
from parley_stats.handlers import StatsHandlers, declare_endpoints
from parley_stats.ingest import ReportWriters
from parley_stats.metrics import PURGED
from parley_stats.settings import StatsSettings
from parley_stats.stream import ReportStream, consumer, stream

log = get_logger("parley.stats")

SETTINGS = StatsSettings
MIGRATIONS = Migrations("stats", "parley_stats.migrations")


def handlers_of(runtime: Runtime) -> StatsHandlers:
    return runtime.component("stats", StatsHandlers)


def purger_of(runtime: Runtime) -> Purger:
    return runtime.component("purger", Purger)


def writers_of(runtime: Runtime) -> ReportWriters:
    return runtime.component("writers", ReportWriters)


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    if not isinstance(settings, StatsSettings):
        raise TypeError(f"the stats service needs StatsSettings, not {type(settings).__name__}")
    await runtime.assets.add(
        stream(
            settings.jetstream_replicas,
            settings.stats_stream_max_age_seconds,
            settings.stats_duplicate_window_seconds,
        )
    )
    await runtime.assets.add(consumer())
    handlers = StatsHandlers(
        settings, runtime.db, ReportStream(runtime.nc, runtime.assets), runtime.clock
    )
    writers = ReportWriters(settings, runtime.nc, runtime.assets, runtime.db, runtime.clock)
    purger = Purger(
        "call_reports",
        runtime.db,
        runtime.clock,
        settings.stats_retention_seconds,
        settings.stats_purge_seconds,
        store.delete_reports_before,
        PURGED,
    )
    runtime.components.update(stats=handlers, writers=writers, purger=purger)
    declare_endpoints(runtime.bus, handlers)
    writers.start()
    purger.start()
    runtime.on_stop(purger.stop)
    runtime.on_drain(writers.stop)  # take no new batch; JetStream keeps the rest for others
    runtime.on_stop(writers.stop)
    log.info(
        "stats_ready",
        batch_max=settings.stats_batch_max,
        batch_window=settings.stats_batch_window_seconds,
        stream_max_age=settings.stats_stream_max_age_seconds,
    )
