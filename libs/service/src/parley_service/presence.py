"""Who is connected, for any service: the presence reader and gateway liveness.

Gateways write one entry per signed-in device connection into the NATS KV bucket
`presence` (the gateway keeps the writer). Any service reads it here: the device records of
up to MAX_QUERY_USERS users in one batched direct get (NATS 2.11+), counting only entries of
gateways that are alive. Liveness comes from the gateways' heartbeats on
`parley.gateway.heartbeat`: a gateway silent for three of its announced intervals has
crashed, and its entries (which outlive it until their TTL) no longer count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.client import KV_PRE_TEMPLATE, KV_STREAM_TEMPLATE
from nats.js.kv import KV_MARKER_REASON, KV_OP

from parley.v1 import presence_pb2
from parley_protocol import subjects
from parley_protocol.clock import Clock
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.direct_get import direct_get
from parley_service.logs import get_logger

log = get_logger("parley.presence")

MAX_QUERY_USERS = 100
QUERY_TIMEOUT_SECONDS = 2.0
# A gateway is gone after this many of its heartbeat intervals without a beat.
MISSED_BEATS = 3
# Until a reader has listened this long, every gateway counts as alive (it has not heard
# them yet); also the interval assumed for a gateway that announces none.
DEFAULT_BEAT_SECONDS = 2.0
# Direct gets of several subjects at once (`multi_last`) arrived in NATS 2.11.
MIN_NATS_SERVER = (2, 11)

PRESENCE_STREAM = KV_STREAM_TEMPLATE.format(bucket=subjects.PRESENCE_BUCKET)
PRESENCE_PREFIX = KV_PRE_TEMPLATE.format(bucket=subjects.PRESENCE_BUCKET)


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One connected device of a user, as its gateway wrote it."""

    user_id: str
    gateway_id: str
    connection_id: str
    session_id: str
    instance_id: str
    connected_at_ms: int
    calling: bool
    messaging: bool
    active_connection: bool
    managed_push: bool
    listening: bool

    @classmethod
    def from_entry(cls, entry: presence_pb2.PresenceEntry) -> DeviceRecord:
        return cls(
            user_id=entry.user_id,
            gateway_id=entry.gateway_id,
            connection_id=entry.connection_id,
            session_id=entry.session_id or entry.connection_id,
            instance_id=entry.instance_id,
            connected_at_ms=entry.connected_at_ms,
            calling=entry.calling,
            messaging=entry.messaging,
            active_connection=entry.active_connection,
            managed_push=entry.managed_push,
            listening=entry.listening,
        )


def check_server_version(nc: NATS, minimum: tuple[int, int] = MIN_NATS_SERVER) -> None:
    """Refuse a NATS server older than `minimum` with a clear reason (RuntimeError)."""
    version = nc.connected_server_version
    try:
        found = (version.major, version.minor)
        name = f"{version.major}.{version.minor}.{version.patch}"
    except (ValueError, TypeError):
        found, name = (0, 0), "of an unknown version"
    if found < minimum:
        raise RuntimeError(
            f"NATS server {name} is too old: Parley needs {minimum[0]}.{minimum[1]} or newer "
            "(presence reads several keys in one batched direct get)"
        )


class GatewayLiveness:
    """Which gateway replicas are alive, from the heartbeats every gateway publishes."""

    def __init__(self, nc: NATS, clock: Clock, own_gateway_id: str = "") -> None:
        self._nc = nc
        self._clock = clock
        self._own = own_gateway_id
        # Gateway id -> (monotonic time of its last beat, its window in seconds).
        self._heard: dict[str, tuple[float, float]] = {}
        self._started_at: float | None = None
        self._sub: Subscription | None = None

    @property
    def startup_window(self) -> float:
        return DEFAULT_BEAT_SECONDS * MISSED_BEATS

    async def start(self) -> None:
        self._started_at = self._clock.monotonic()
        self._sub = await self._nc.subscribe(subjects.GATEWAY_HEARTBEAT, cb=self._on_beat)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
        self._sub = None

    def is_live(self, gateway_id: str) -> bool:
        if gateway_id == self._own:
            return True
        now = self._clock.monotonic()
        if self._started_at is None or now - self._started_at < self.startup_window:
            return True  # still learning who is out there (the KV TTL still applies)
        heard = self._heard.get(gateway_id)
        return heard is not None and now - heard[0] < heard[1]

    def live_peers(self) -> set[str]:
        now = self._clock.monotonic()
        return {g for g, (at, window) in self._heard.items() if now - at < window}

    async def _on_beat(self, msg: Msg) -> None:
        beat = presence_pb2.GatewayHeartbeat()
        try:
            beat.ParseFromString(msg.data)
        except Exception:
            log.warning("gateway_heartbeat_unreadable")
            return
        self.heard(beat)

    def heard(self, beat: presence_pb2.GatewayHeartbeat) -> None:
        """Take one heartbeat into account."""
        if not beat.gateway_id or beat.gateway_id == self._own:
            return
        if beat.alive:
            interval = beat.interval_ms / 1000 if beat.interval_ms else DEFAULT_BEAT_SECONDS
            if beat.gateway_id not in self._heard:
                log.info("gateway_joined", gateway=beat.gateway_id)
            self._heard[beat.gateway_id] = (self._clock.monotonic(), interval * MISSED_BEATS)
        elif self._heard.pop(beat.gateway_id, None) is not None:
            log.info("gateway_left", gateway=beat.gateway_id)


class PresenceReader:
    """The connected devices of users, from the presence bucket (live gateways only)."""

    def __init__(self, nc: NATS, liveness: GatewayLiveness) -> None:
        self._nc = nc
        self.liveness = liveness

    async def devices(
        self, application_key: str, user_ids: Sequence[str]
    ) -> dict[str, list[DeviceRecord]]:
        """Every connected device of each user (of this application only).

        Raises ParleyError: INVALID_ARGUMENT over MAX_QUERY_USERS users, UNAVAILABLE or
        TIMEOUT when the presence store cannot answer.
        """
        found: dict[str, list[DeviceRecord]] = {user_id: [] for user_id in user_ids}
        if not found:
            return found
        if len(found) > MAX_QUERY_USERS:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                f"{len(found)} users in one presence query; the limit is {MAX_QUERY_USERS}",
                "user_ids",
            )
        by_token = {subjects.encode_user_id(u): u for u in found}
        filters = [
            PRESENCE_PREFIX + subjects.presence_user_filter(application_key, u) for u in found
        ]
        for subject, data in await self._last_per_subject(filters):
            parts = subject[len(PRESENCE_PREFIX) :].split(".")
            user_id = by_token.get(parts[1]) if len(parts) == 3 else None
            if user_id is None or parts[0] != application_key:
                continue
            entry = presence_pb2.PresenceEntry()
            try:
                entry.ParseFromString(data)
            except Exception:
                log.warning("presence_entry_unreadable", key=subject[len(PRESENCE_PREFIX) :])
                continue
            # Disconnected sessions stay in the bucket (for a resume) but are offline.
            if not entry.disconnected_at_ms and self.liveness.is_live(entry.gateway_id):
                found[user_id].append(DeviceRecord.from_entry(entry))
        return found

    async def session_exists(self, application_key: str, user_id: str, session_id: str) -> bool:
        """Whether the device session still has its record: connected, or disconnected but
        resumable (until its TTL). False once it said Goodbye or its record expired.

        Raises ParleyError UNAVAILABLE or TIMEOUT when the presence store cannot answer.
        """
        key = subjects.presence_key(application_key, user_id, session_id)
        return bool(await self._last_per_subject([PRESENCE_PREFIX + key]))

    async def listening_devices(
        self, application_key: str, user_ids: Sequence[str]
    ) -> dict[str, int]:
        """How many devices of each user listen on their active connection."""
        devices = await self.devices(application_key, user_ids)
        return {u: sum(1 for d in records if d.listening) for u, records in devices.items()}

    async def _last_per_subject(self, filters: list[str]) -> list[tuple[str, bytes]]:
        """Latest live message of every subject matching `filters` (batched direct get)."""
        stored, _ = await direct_get(
            self._nc,
            PRESENCE_STREAM,
            {"multi_last": filters, "batch": 10_000},
            "presence store",
            QUERY_TIMEOUT_SECONDS,
        )
        # Deletion and expiry markers say the key is gone.
        return [
            (m.subject, m.data)
            for m in stored
            if KV_OP not in m.headers and KV_MARKER_REASON not in m.headers
        ]
