"""Which gateway replicas are alive: every gateway publishes a heartbeat every few seconds
and listens to the others'.

Presence entries outlive a crashed gateway until their KV TTL (a minute); counting only the
entries of live gateways makes a crash visible in presence within three heartbeats. Right
after start this gateway has not heard the others yet, so for that long everyone counts as
alive (the KV TTL still applies).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from parley.v1 import presence_pb2
from parley_protocol import subjects
from parley_protocol.clock import Clock
from parley_service.logs import get_logger

log = get_logger("parley.gateway.peers")

MISSED_BEATS = 3


class Peers:
    def __init__(
        self,
        nc: NATS,
        gateway_id: str,
        interval: float,
        clock: Clock,
    ) -> None:
        self._nc = nc
        self.gateway_id = gateway_id
        self._interval = interval
        self._clock = clock
        # Reported in heartbeats (the gateway sets it to its session count).
        self.connections_count: Callable[[], int] = lambda: 0
        self._last_heard: dict[str, float] = {}
        self._started_at: float | None = None
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def window(self) -> float:
        return self._interval * MISSED_BEATS

    def is_live(self, gateway_id: str) -> bool:
        if gateway_id == self.gateway_id:
            return True
        now = self._clock.monotonic()
        if self._started_at is None or now - self._started_at < self.window:
            return True  # still learning who is out there
        heard = self._last_heard.get(gateway_id)
        return heard is not None and now - heard < self.window

    def live_peers(self) -> set[str]:
        now = self._clock.monotonic()
        return {g for g, heard in self._last_heard.items() if now - heard < self.window}

    async def start(self) -> None:
        self._started_at = self._clock.monotonic()
        self._sub = await self._nc.subscribe(subjects.GATEWAY_HEARTBEAT, cb=self._on_beat)
        await self._beat(alive=True)
        self._task = asyncio.create_task(self._loop(), name="gateway-peers")

    async def stop(self) -> None:
        """Say goodbye, so the others stop counting this gateway's entries at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(nats.errors.Error):
            await self._beat(alive=False)
            if self._sub is not None:
                await self._sub.unsubscribe()
        self._sub = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._beat(alive=True)
            except nats.errors.Error as exc:
                log.warning("peer_heartbeat_failed", error=str(exc))

    async def _beat(self, alive: bool) -> None:
        beat = presence_pb2.GatewayHeartbeat(
            gateway_id=self.gateway_id, connections=self.connections_count(), alive=alive
        )
        await self._nc.publish(subjects.GATEWAY_HEARTBEAT, beat.SerializeToString())

    async def _on_beat(self, msg: Msg) -> None:
        beat = presence_pb2.GatewayHeartbeat()
        try:
            beat.ParseFromString(msg.data)
        except Exception:
            log.warning("peer_heartbeat_unreadable")
            return
        if not beat.gateway_id or beat.gateway_id == self.gateway_id:
            return
        if beat.alive:
            if beat.gateway_id not in self._last_heard:
                log.info("peer_joined", peer=beat.gateway_id)
            self._last_heard[beat.gateway_id] = self._clock.monotonic()
        elif self._last_heard.pop(beat.gateway_id, None) is not None:
            log.info("peer_left", peer=beat.gateway_id)
