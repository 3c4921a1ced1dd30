"""Composition root of the calls service: settings, the call store, presence, device
events, the handlers of the routed call bodies, and the sweeper."""

from __future__ import annotations

from parley_calls.events import CallEvents
from parley_calls.handlers import CallHandlers, declare_endpoints
from parley_calls.settings import CallsSettings
from parley_calls.store import CallStore
from parley_calls.sweeper import Sweeper
from parley_service.db import Migrations
from parley_service.devices import DeviceEvents
from parley_service.logs import get_logger
from parley_service.presence import GatewayLiveness, PresenceReader
from parley_service.runtime import Runtime

log = get_logger("parley.calls")

SETTINGS = CallsSettings
MIGRATIONS: Migrations | None = None  # keeps no tables: its state is the KV bucket `calls`


def handlers_of(runtime: Runtime) -> CallHandlers:
    return runtime.component("calls", CallHandlers)


def sweeper_of(runtime: Runtime) -> Sweeper:
    return runtime.component("sweeper", Sweeper)


def store_of(runtime: Runtime) -> CallStore:
    return runtime.component("store", CallStore)


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    if not isinstance(settings, CallsSettings):
        raise TypeError(f"the calls service needs CallsSettings, not {type(settings).__name__}")
    store = CallStore(
        runtime.nc, runtime.assets, settings.jetstream_replicas, settings.call_linger_seconds
    )
    await store.open()
    liveness = GatewayLiveness(runtime.nc, runtime.clock)
    await liveness.start()
    runtime.on_stop(liveness.stop)
    presence = PresenceReader(runtime.nc, liveness)
    events = CallEvents(DeviceEvents(runtime.nc, settings.window), runtime.nc)
    handlers = CallHandlers(settings, store, presence, events, runtime.bus, runtime.clock)
    sweeper = Sweeper(
        store,
        events,
        presence,
        runtime.clock,
        settings.call_sweep_seconds,
        settings.call_party_check_seconds,
        settings.call_linger_seconds,
    )
    runtime.components.update(calls=handlers, sweeper=sweeper, store=store)
    declare_endpoints(runtime.bus, handlers)
    await sweeper.start()
    runtime.on_stop(sweeper.stop)
    runtime.assets.on_restored(sweeper.rebuild)
    log.info(
        "calls_ready",
        setup_timeout_seconds=settings.call_setup_timeout_seconds,
        ringing_timeout_seconds=settings.call_ringing_timeout_seconds,
        ice_servers=len(settings.ice_urls),
    )
