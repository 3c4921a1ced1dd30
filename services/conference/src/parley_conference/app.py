"""Composition root of the conference service: room placement (KV), the mixer, the rooms
and their events, leg reports, and the requests (joins from the calls service, the
application's queries, commands and callouts)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from parley_conference import mixer_metrics
from parley_conference.mixer import Mixer
from parley_conference.placement import Placement
from parley_conference.rooms import Rooms
from parley_conference.service import ConferenceService
from parley_conference.settings import ConferenceSettings
from parley_legs.reports import LegReporter
from parley_legs.webrtc import use_host_addresses
from parley_service.db import Migrations
from parley_service.devices import DeviceEvents
from parley_service.logs import get_logger
from parley_service.runtime import Runtime

log = get_logger("parley.conference")

SETTINGS = ConferenceSettings
MIGRATIONS: Migrations | None = None  # keeps no tables: placement is in KV, rooms in memory


def service_of(runtime: Runtime) -> ConferenceService:
    return runtime.component("conference", ConferenceService)


def mixer_of(runtime: Runtime) -> Mixer:
    return runtime.component("mixer", Mixer)


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    if not isinstance(settings, ConferenceSettings):
        raise TypeError(
            f"the conference service needs ConferenceSettings, not {type(settings).__name__}"
        )
    use_host_addresses(settings.ice_host_addresses)
    placement = Placement(
        runtime.nc,
        runtime.assets,
        runtime.clock,
        settings.instance_id,
        settings.jetstream_replicas,
        settings.conference_replica_ttl_seconds,
    )
    await placement.open()
    mixer = Mixer()
    collector = mixer_metrics.register(mixer)
    runtime.on_stop(lambda: _unregister(collector))
    await mixer.start()
    rooms = Rooms(
        mixer, DeviceEvents(runtime.nc, settings.event_window_seconds > 0), placement, runtime.clock
    )
    service = ConferenceService(
        settings, runtime.nc, runtime.bus, placement, rooms, LegReporter(runtime.bus)
    )
    service.declare(runtime.bus)
    await service.start()
    runtime.components.update(conference=service, mixer=mixer)
    runtime.on_drain(service.drain)
    runtime.on_stop(service.stop)
    runtime.on_stop(mixer.stop)
    log.info(
        "conference_ready",
        replica=settings.instance_id,
        max_participants=settings.conference_max_participants,
    )


async def _unregister(collector: mixer_metrics.MixerCollector) -> None:
    """In-process tests run a service more than once: its mixer's figures go with it."""
    REGISTRY.unregister(collector)
