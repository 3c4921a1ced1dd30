"""Composition root of the gateway: settings, token verifier, presence, routing, HTTP."""

from __future__ import annotations

from parley.v1 import auth_pb2
from parley_gateway.forward import Forwarder
from parley_gateway.gateway import Gateway
from parley_gateway.http_api import HttpApi
from parley_gateway.peers import Peers
from parley_gateway.presence import PresenceStore
from parley_gateway.resume import Resumer
from parley_gateway.routing import Router
from parley_gateway.settings import GatewaySettings
from parley_gateway.tokens import TokenVerifier
from parley_gateway.window import EventWindow
from parley_protocol import subjects
from parley_service.db import Migrations
from parley_service.logs import get_logger
from parley_service.presence import PresenceReader
from parley_service.runtime import Runtime

log = get_logger("parley.gateway")

SETTINGS = GatewaySettings
MIGRATIONS: Migrations | None = None  # the gateway keeps no tables

JWKS_TIMEOUT_SECONDS = 2.0


def gateway_of(runtime: Runtime) -> Gateway:
    """The Gateway that `setup` built on `runtime` (its `port`, `sessions`, ...)."""
    gateway = runtime.components["gateway"]
    assert isinstance(gateway, Gateway)
    return gateway


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    if not isinstance(settings, GatewaySettings):
        raise TypeError(f"the gateway needs GatewaySettings, not {type(settings).__name__}")

    async def fetch_jwks() -> str:
        reply = await runtime.bus.request(
            subjects.AUTH_JWKS, auth_pb2.JwksRequest(), auth_pb2.JwksResponse, JWKS_TIMEOUT_SECONDS
        )
        text: str = reply.jwks_json
        return text

    verifier = TokenVerifier(
        fetch_jwks,
        runtime.clock,
        settings.environment,
        settings.jwks_refetch_seconds,
        settings.jwks_max_age_seconds,
    )
    peers = Peers(runtime.nc, settings.gateway_id, settings.peer_heartbeat_seconds, runtime.clock)
    presence = PresenceStore(runtime.nc, settings.gateway_id, settings.presence_entry_ttl_seconds)
    window = EventWindow(
        runtime.nc,
        settings.event_window_seconds,
        settings.event_window_max_events,
        settings.event_window_file,
        settings.jetstream_replicas,
    )
    gateway = Gateway(
        settings,
        runtime.clock,
        verifier,
        presence,
        Router(runtime.nc, window.enabled),
        peers,
        Forwarder(runtime.bus, settings.gateway_id, settings.max_requests_in_flight),
        PresenceReader(runtime.nc, peers.liveness),
        runtime.assets,
        Resumer(runtime.nc, settings.gateway_id, window),
    )

    async def on_keys_changed(msg: object) -> None:
        try:
            await verifier.refresh()
        except Exception as exc:  # the next unknown kid or stale check fetches again
            log.warning("jwks_refresh_on_rotation_failed", error=str(exc))

    # Everything that can fail, and the hooks that undo it, before the listener opens: the
    # listener starts last (and stops itself again if its own start fails).
    runtime.components["gateway"] = gateway
    runtime.on_drain(gateway.drain)
    runtime.on_stop(gateway.stop)
    await runtime.nc.subscribe(subjects.AUTH_KEYS_CHANGED, cb=on_keys_changed)
    await gateway.start(HttpApi(gateway, runtime.bus).application())
