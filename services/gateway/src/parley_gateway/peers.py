"""This gateway's heartbeat, and which other gateway replicas are alive.

Every gateway publishes a heartbeat (with its interval) every few seconds; who is alive is
read from them by `parley_service.presence.GatewayLiveness`, which any service can use.
Presence entries outlive a crashed gateway until their KV TTL (a minute); counting only the
entries of live gateways makes a crash visible in presence within three heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client as NATS

from parley.v1 import presence_pb2
from parley_protocol import subjects
from parley_protocol.clock import Clock
from parley_service import tasks
from parley_service.logs import get_logger
from parley_service.presence import MISSED_BEATS, GatewayLiveness

log = get_logger("parley.gateway.peers")


class Peers:
    def __init__(self, nc: NATS, gateway_id: str, interval: float, clock: Clock) -> None:
        self._nc = nc
        self.gateway_id = gateway_id
        self._interval = interval
        self.liveness = GatewayLiveness(nc, clock, own_gateway_id=gateway_id)
        # Reported in heartbeats (the gateway sets it to its session count).
        self.connections_count: Callable[[], int] = lambda: 0
        self._task: asyncio.Task[None] | None = None

    @property
    def window(self) -> float:
        return self._interval * MISSED_BEATS

    def is_live(self, gateway_id: str) -> bool:
        return self.liveness.is_live(gateway_id)

    def live_peers(self) -> set[str]:
        return self.liveness.live_peers()

    async def start(self) -> None:
        await self.liveness.start()
        await self._beat(alive=True)
        self._task = asyncio.create_task(self._loop(), name="gateway-peers")

    async def stop(self) -> None:
        """Say goodbye, so the others stop counting this gateway's entries at once."""
        await tasks.stop(self._task)
        self._task = None
        with contextlib.suppress(nats.errors.Error):
            await self._beat(alive=False)
        await self.liveness.stop()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._beat(alive=True)
            except nats.errors.Error as exc:
                log.warning("peer_heartbeat_failed", error=str(exc))

    async def _beat(self, alive: bool) -> None:
        beat = presence_pb2.GatewayHeartbeat(
            gateway_id=self.gateway_id,
            connections=self.connections_count(),
            alive=alive,
            interval_ms=round(self._interval * 1000),
        )
        await self._nc.publish(subjects.GATEWAY_HEARTBEAT, beat.SerializeToString())
