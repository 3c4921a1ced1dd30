"""One way for every service to start, serve and stop.

`run(settings, setup, migrations)` builds the shared parts (logs, tracing, NATS, Postgres
with migrations, the health port), calls the service's `setup(runtime)` to declare its
endpoints, serves until a signal, then stops: SIGTERM drains (readiness goes 503, no new
requests are taken, work in flight finishes, then exit); SIGINT stops at once.
"""

from __future__ import annotations

import asyncio
import resource
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import nats
from nats.aio.client import Client as NATS

from parley_protocol.clock import Clock, SystemClock
from parley_service import tracing
from parley_service.bus import Bus, InFlight
from parley_service.db import apply_migrations, create_pool
from parley_service.health import HealthServer
from parley_service.logs import configure_logging, get_logger
from parley_service.settings import ServiceSettings

log = get_logger("parley.runtime")

Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Migrations:
    schema: str
    package: str


@dataclass
class Runtime:
    settings: ServiceSettings
    nc: NATS
    bus: Bus
    health: HealthServer
    clock: Clock
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

    @property
    def db(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError("this service was started without PARLEY_DATABASE_URL")
        return self.pool


def raise_file_limit() -> int:
    """Lift the soft limit on open files to the hard one: a gateway holds a socket per client."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def connect_nats(settings: ServiceSettings, attempts: int = 60) -> NATS:
    """Connect, retrying the first connection; once up, reconnect forever."""

    async def on_disconnect() -> None:
        log.warning("nats_disconnected")

    async def on_reconnect() -> None:
        log.info("nats_reconnected")

    async def on_error(exc: Exception) -> None:
        log.warning("nats_error", error=str(exc))

    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            return await nats.connect(
                settings.nats_url,
                name=f"{settings.service_name}/{settings.instance_id}",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                error_cb=on_error,
                connect_timeout=2,
            )
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("nats_connect_retry", attempt=attempt, error=str(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


async def start(
    settings: ServiceSettings,
    setup: Callable[[Runtime], Awaitable[None]],
    migrations: Migrations | None = None,
    clock: Clock | None = None,
) -> Runtime:
    """Build the shared parts, let the service declare itself, and start serving."""
    raise_file_limit()
    health = HealthServer(settings.health_host, settings.health_port)
    await health.start()
    nc = await connect_nats(settings)
    in_flight = InFlight()
    runtime = Runtime(
        settings=settings,
        nc=nc,
        bus=Bus(nc, settings.service_name, in_flight),
        health=health,
        clock=clock or SystemClock(),
        in_flight=in_flight,
    )

    async def nats_ready() -> str | None:
        return None if nc.is_connected else "NATS is not connected"

    health.add_check(nats_ready)
    if settings.database_url:
        runtime.pool = await create_pool(settings.database_url, settings.db_pool_max)
        if migrations is not None:
            async with runtime.pool.acquire() as conn:
                await apply_migrations(conn, migrations.schema, migrations.package)

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
    health.started = True
    log.info("service_started", instance=settings.instance_id, health_port=health.port)
    return runtime


async def stop(runtime: Runtime, drain: bool = True) -> None:
    """Drain (stop taking work, finish what is in flight) or stop at once, then close."""
    if drain:
        await _drain(runtime)
    else:
        log.info("service_stopping", reason="immediate")
        runtime.health.draining = True
        await runtime.bus.stop_serving()
    for hook in runtime.stop_hooks:
        try:
            await hook()
        except Exception:
            log.exception("stop_hook_failed")
    try:
        if drain:
            await runtime.nc.drain()
        else:
            await runtime.nc.close()
    except Exception as exc:
        log.warning("nats_close_failed", error=str(exc))
    if runtime.pool is not None:
        await runtime.pool.close()
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
    tracing.configure_tracing(settings.service_name, settings.instance_id, settings.otel_exporter)
    runtime = await start(settings, setup, migrations, clock)
    stop_signal = await _wait_for_signal()
    await stop(runtime, drain=stop_signal == signal.SIGTERM)


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


def main(
    settings: ServiceSettings,
    setup: Callable[[Runtime], Awaitable[None]],
    migrations: Migrations | None = None,
) -> None:
    """Entry point for a service's `__main__`."""
    asyncio.run(run(settings, setup, migrations))
