"""Composition root of the sip service: the SIP user agent (pjsua2 on its own thread), the
WebRTC settings, credit, leg reports, and the dialler that takes the far side of phone and
SIP calls from the calls service."""

from __future__ import annotations

from parley_legs.reports import LegReporter
from parley_legs.webrtc import use_host_addresses
from parley_service.bus import Bus
from parley_service.db import Migrations
from parley_service.logs import get_logger
from parley_service.runtime import Runtime
from parley_sip.credits import Credits
from parley_sip.dial import Dialler
from parley_sip.engine import EngineConfig, SipEngine
from parley_sip.settings import SipSettings

log = get_logger("parley.sip")

SETTINGS = SipSettings
MIGRATIONS: Migrations | None = None  # keeps no tables: credit is auth's, calls are calls'


def dialler_of(runtime: Runtime) -> Dialler:
    return runtime.component("dialler", Dialler)


def engine_of(runtime: Runtime) -> SipEngine:
    return runtime.component("engine", SipEngine)


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    if not isinstance(settings, SipSettings):
        raise TypeError(f"the sip service needs SipSettings, not {type(settings).__name__}")
    use_host_addresses(settings.ice_host_addresses)
    engine = SipEngine(
        EngineConfig(
            bind_host=settings.sip_bind_host,
            port=settings.sip_port,
            transport=settings.sip_transport,
            public_host=settings.sip_public_host or None,
            rtp_port_start=settings.sip_rtp_port,
        )
    )
    await engine.start()
    # Dials are served on a bus of their own, joined and left as room comes and goes.
    listener = Bus(runtime.nc, "sip", runtime.bus.in_flight)
    dialler = Dialler(
        settings,
        runtime.nc,
        engine,
        Credits(runtime.bus),
        LegReporter(runtime.bus),
        listener,
        runtime.bus,
    )
    runtime.components.update(dialler=dialler, engine=engine)
    await dialler.listen()
    engine.on_incoming(dialler.on_invite)
    runtime.on_drain(dialler.drain)
    runtime.on_stop(dialler.stop)
    runtime.on_stop(engine.stop)
    log.info(
        "sip_ready",
        sip_port=engine.local_port,
        transport=settings.sip_transport,
        trunk=settings.sip_trunk_host or None,
        test_number=settings.sip_test_number,
        capacity=dialler.capacity,
    )
