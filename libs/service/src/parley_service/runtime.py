"""One way for every service to start, serve and stop.

`run(settings, setup, migrations)` builds the shared parts (logs, tracing, NATS, Postgres
with migrations, the health port), calls the service's `setup(runtime)` to declare its
endpoints, serves until a signal, then stops: SIGTERM drains (readiness goes 503, no new
requests are taken, work in flight finishes, then exit); SIGINT stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import asyncpg
import nats.errors
from nats.aio.client import Client as NATS

from parley_protocol import heap
from parley_protocol.clock import Clock, SystemClock
from parley_service import app_label, tracing
from parley_service.assets import JetStreamAssets
from parley_service.bus import Bus, InFlight
from parley_service.db import Migrations, apply_migrations, create_pool, migrate
from parley_service.health import SERVICE_INFO, HealthServer
from parley_service.logs import configure_logging, get_logger, safe_url
from parley_service.presence import check_server_version
from parley_service.settings import ServiceSettings, SettingsError

log = get_logger("parley.runtime")

Hook = Callable[[], Awaitable[None]]


C = TypeVar("C")


@dataclass
class Runtime:
    settings: ServiceSettings
    nc: NATS
    bus: Bus
    health: HealthServer
    clock: Clock
    assets: JetStreamAssets
    pool: asyncpg.Pool | None = None
    in_flight: InFlight = field(default_factory=InFlight)
    drain_hooks: list[Hook] = field(default_factory=list)
    stop_hooks: list[Hook] = field(default_factory=list)
    # What a service's setup built, by name, for in-process tests and tools to reach.
    components: dict[str, object] = field(default_factory=dict)

    def on_drain(self, hook: Hook) -> None:
        """Run when draining starts: stop taking new work of this service's own kind."""
        self.drain_hooks.append(hook)

    def on_stop(self, hook: Hook) -> None:
        """Run last, before connections close (both on drain and on immediate stop)."""
        self.stop_hooks.append(hook)

    def component(self, name: str, kind: type[C]) -> C:
        """What setup put in `components[name]`, checked to be a `kind`."""
        found = self.components[name]
        if not isinstance(found, kind):
            raise TypeError(f"component {name!r} is a {type(found).__name__}, not {kind.__name__}")
        return found

    @property
    def db(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError("this service was started without PARLEY_DATABASE_URL")
        return self.pool


class StartupError(RuntimeError):
    """The service cannot start; the message says why, in one line."""


# Where the hard limit is "unlimited" (macOS), setrlimit refuses it: ask for this instead.
_FILE_LIMIT_CAP = 1 << 20


def raise_file_limit() -> int:
    """Lift the soft limit on open files to the hard one: a gateway holds a socket per client."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _FILE_LIMIT_CAP if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("file_limit_unchanged", soft=soft, hard=hard, error=str(exc))
            return soft
    return wanted


async def connect_nats(
    settings: ServiceSettings, on_reconnected: Callable[[], None] = lambda: None
) -> NATS:
    """Connect within `startup_timeout_seconds` (retrying); once up, reconnect forever,
    calling `on_reconnected()` each time the connection is back."""

    async def on_disconnect() -> None:
        log.warning("nats_disconnected")

    async def on_reconnect() -> None:
        log.info("nats_reconnected")
        on_reconnected()

    async def on_error(exc: Exception) -> None:
        log.warning("nats_error", error=str(exc))

    nc = NATS()
    try:
        # With unlimited reconnects nats-py also retries the first connection, for ever:
        # the deadline is ours.
        await asyncio.wait_for(
            nc.connect(
                settings.nats_url,
                name=f"{settings.service_name}/{settings.instance_id}",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,  # type: ignore[arg-type]  # a float works
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                error_cb=on_error,
                connect_timeout=2,
            ),
            settings.startup_timeout_seconds,
        )
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        with contextlib.suppress(Exception):
            await nc.close()
        raise StartupError(
            f"cannot reach NATS at {safe_url(settings.nats_url)} within "
            f"{settings.startup_timeout_seconds:g} s ({type(exc).__name__}: {exc})"
        ) from exc
    try:
        check_server_version(nc)  # presence reads (every service's) need 2.11+
    except RuntimeError as exc:
        with contextlib.suppress(Exception):
            await nc.close()
        raise StartupError(f"{exc} (at {safe_url(settings.nats_url)})") from exc
    return nc


async def connect_database(settings: ServiceSettings) -> asyncpg.Pool:
    """A pool, retrying while PostgreSQL comes up, within `startup_timeout_seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.startup_timeout_seconds
    delay = 0.2
    while True:
        try:
            return await create_pool(settings.database_url, settings.db_pool_max)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            if loop.time() + delay > deadline:
                raise StartupError(
                    f"cannot reach PostgreSQL at {safe_url(settings.database_url)} within "
                    f"{settings.startup_timeout_seconds:g} s ({type(exc).__name__}: {exc})"
                ) from exc
            log.warning("database_connect_retry", error=str(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def start(
    settings: ServiceSettings,
    setup: Callable[[Runtime], Awaitable[None]],
    migrations: Migrations | None = None,
    clock: Clock | None = None,
) -> Runtime:
    """Build the shared parts, let the service declare itself, and start serving.

    If any step fails, what was already opened is closed again before the error goes on.
    """
    raise_file_limit()
    SERVICE_INFO.labels(settings.service_name).set(1)
    health = HealthServer(settings.health_host, settings.health_port)
    await health.start()
    reconnected: list[Callable[[], None]] = []
    try:

        def on_reconnected() -> None:
            for hook in reconnected:
                hook()

        nc = await connect_nats(settings, on_reconnected)
    except BaseException:
        await health.stop()
        raise
    in_flight = InFlight()
    assets = JetStreamAssets(nc, settings.jetstream_replicas, settings.asset_check_seconds)
    reconnected.append(assets.reconnected)
    runtime = Runtime(
        settings=settings,
        nc=nc,
        bus=Bus(nc, settings.service_name, in_flight, settings.max_concurrent_requests),
        health=health,
        clock=clock or SystemClock(),
        assets=assets,
        in_flight=in_flight,
    )
    try:
        await _build(runtime, setup, migrations)
    except BaseException:
        await stop(runtime, drain=False)
        raise
    health.started = True
    log.info("service_started", instance=settings.instance_id, health_port=health.port)
    return runtime


async def _build(
    runtime: Runtime,
    setup: Callable[[Runtime], Awaitable[None]],
    migrations: Migrations | None,
) -> None:
    settings, nc, health = runtime.settings, runtime.nc, runtime.health

    async def nats_ready() -> str | None:
        return None if nc.is_connected else "NATS is not connected"

    health.add_check(nats_ready)
    health.add_check(runtime.assets.ready)
    if settings.database_url:
        runtime.pool = await connect_database(settings)
        if migrations is not None:  # on a connection of its own: it takes an advisory lock
            await migrate(settings.database_url, migrations.schema, migrations.package)

        async def db_ready() -> str | None:
            try:
                async with runtime.db.acquire(timeout=2) as conn:
                    await conn.fetchval("SELECT 1")
                return None
            except Exception as exc:
                return f"PostgreSQL: {exc}"

        health.add_check(db_ready)

    await setup(runtime)
    await runtime.bus.serve()


# How long closing the database pool may wait for queries still running.
POOL_CLOSE_SECONDS = 5.0


async def stop(runtime: Runtime, drain: bool = True) -> None:
    """Drain (stop taking work, finish what is in flight) or stop at once, then close.

    Neither waits without bound: a drain gives work in flight `drain_timeout_seconds`, and
    queries still running after that are cut off with the pool.
    """
    if drain:
        await _drain(runtime)
    else:
        log.info("service_stopping", reason="immediate")
        runtime.health.draining = True
        await runtime.bus.stop_serving()
        await runtime.bus.cancel_in_flight()
    for hook in runtime.stop_hooks:
        try:
            await hook()
        except Exception:
            log.exception("stop_hook_failed")
    await runtime.assets.close()
    try:
        if drain:
            await runtime.nc.drain()
        else:
            await runtime.nc.close()
    except Exception as exc:
        log.warning("nats_close_failed", error=str(exc))
    if runtime.pool is not None:
        try:
            await asyncio.wait_for(runtime.pool.close(), POOL_CLOSE_SECONDS if drain else 0.5)
        except TimeoutError:
            log.warning("database_pool_terminated", reason="queries still running")
            runtime.pool.terminate()
    await runtime.health.stop()
    log.info("service_stopped")


async def run(
    settings: ServiceSettings,
    setup: Callable[[Runtime], Awaitable[None]],
    migrations: Migrations | None = None,
    clock: Clock | None = None,
) -> None:
    """Start, serve until SIGTERM (drain) or SIGINT (stop at once), then stop."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    provider = tracing.configure_tracing(
        settings.service_name,
        settings.instance_id,
        settings.otel_exporter,
        otlp_endpoint=settings.otlp_endpoint,
        sample_ratio=settings.trace_sample_ratio,
    )
    app_label.configure(settings.metrics_app_labels)
    try:
        runtime = await start(settings, setup, migrations, clock)
        heap.settle()  # what start-up built stays for the process's life
        stop_signal = await _wait_for_signal()
        await stop(runtime, drain=stop_signal == signal.SIGTERM)
    finally:
        # The spans still batched go out now (the exporter's own timeout bounds it); on a
        # thread: the export blocks.
        await asyncio.to_thread(provider.shutdown)


async def _drain(runtime: Runtime) -> None:
    log.info("service_draining", in_flight=runtime.in_flight.count)
    runtime.health.draining = True
    for hook in runtime.drain_hooks:
        try:
            await hook()
        except Exception:
            log.exception("drain_hook_failed")
    await runtime.bus.stop_serving()
    if not await runtime.in_flight.wait_idle(runtime.settings.drain_timeout_seconds):
        log.warning("drain_timeout", in_flight=runtime.in_flight.count)


async def _wait_for_signal() -> signal.Signals:
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()

    def on_signal(sig: signal.Signals) -> None:
        if not received.done():
            received.set_result(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await received
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def migrate_only(settings: ServiceSettings, migrations: Migrations) -> list[int]:
    """Apply the service's migrations not applied yet, as a start would (waiting up to
    `startup_timeout_seconds` for PostgreSQL, under the same advisory lock), and nothing
    else: no NATS, no health port. Returns the versions applied."""
    pool = await connect_database(settings)
    try:
        async with pool.acquire() as conn:
            applied = await apply_migrations(conn, migrations.schema, migrations.package)
    except asyncpg.PostgresError as exc:
        raise StartupError(
            f"the migrations of schema {migrations.schema} failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        await pool.close()
    log.info("migrations_done", schema=migrations.schema, applied=applied)
    return applied


def check_migrate_only(settings: ServiceSettings, migrations: Migrations | None) -> Migrations:
    """The migrations PARLEY_MIGRATE_ONLY applies, or a SettingsError saying why none can."""
    if migrations is None:
        raise SettingsError(
            f"PARLEY_MIGRATE_ONLY: the {settings.service_name} service keeps no tables "
            "(it has no migrations to apply)"
        )
    if not settings.database_url:
        raise SettingsError("PARLEY_MIGRATE_ONLY needs PARLEY_DATABASE_URL")
    return migrations


def main(
    settings_type: type[ServiceSettings],
    setup: Callable[[Runtime], Awaitable[None]],
    migrations: Migrations | None = None,
) -> None:
    """Entry point for a service's `__main__`: settings from the environment, then `run`
    (or, with PARLEY_MIGRATE_ONLY, `migrate_only`).

    A bad setting or an unreachable dependency ends the process with one line saying so
    (exit code 2 for configuration, 1 for the rest), not a traceback.
    """
    name = f"parley-{settings_type.service_name}"
    try:
        settings = settings_type.from_env()
        to_apply = check_migrate_only(settings, migrations) if settings.migrate_only else None
    except SettingsError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        if to_apply is not None:
            configure_logging(settings.service_name, settings.log_level, settings.log_format)
            asyncio.run(migrate_only(settings, to_apply))
        else:
            asyncio.run(run(settings, setup, migrations))
    except StartupError as exc:
        print(f"{name}: cannot start: {exc}", file=sys.stderr)
        sys.exit(1)
