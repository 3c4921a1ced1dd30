"""Which replica holds which room: the KV bucket conference_rooms, written by compare-and-set
only, and each live replica's load in conference_replicas.

A room's key names one replica. The first join of a room writes it (a new key: the write
fails if another replica wrote first, and then that one's choice stands), naming the
least-loaded live replica that is not stopping; so two replicas never host the same room.
A key naming a replica that is gone (its load entry expired) is taken over the same way,
with the revision it was read at. The replica that holds a room deletes the key when the
room ends, at the revision it wrote, so a newer placement is never removed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import nats.errors
import nats.js.errors
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.client import KV_PRE_TEMPLATE
from nats.js.kv import KeyValue

from parley.v1 import conference_pb2
from parley_protocol import subjects
from parley_protocol.clock import Clock
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.assets import MISSING_ERRORS, JetStreamAssets, KeyValueBucket
from parley_service.logs import get_logger

log = get_logger("parley.conference.placement")

ROOMS_PREFIX = KV_PRE_TEMPLATE.format(bucket=subjects.CONFERENCE_ROOMS_BUCKET)
REPLICAS_PREFIX = KV_PRE_TEMPLATE.format(bucket=subjects.CONFERENCE_REPLICAS_BUCKET)
# JetStream's "wrong last sequence" error codes (the compare of a compare-and-set failed).
_WRONG_LAST_SEQUENCE = (10071, 10164)
MAX_ATTEMPTS = 10
M = TypeVar("M", conference_pb2.ReplicaLoad, conference_pb2.RoomPlacement)


class Conflict(Exception):
    """The key changed since it was read."""


@dataclass(frozen=True, slots=True)
class Placed:
    replica_id: str
    revision: int


class Placement:
    def __init__(
        self,
        nc: NATS,
        assets: JetStreamAssets,
        clock: Clock,
        replica_id: str,
        replicas: int,
        replica_ttl_seconds: float,
    ) -> None:
        self._js = nc.jetstream()
        self._assets = assets
        self._clock = clock
        self.replica_id = replica_id
        self._replicas = replicas
        self._ttl_ms = int(replica_ttl_seconds * 1000)
        self._replica_ttl = max(1, math.ceil(replica_ttl_seconds))
        self._rooms: KeyValue | None = None
        self._loads: KeyValue | None = None

    async def open(self) -> None:
        """Declare both buckets (rooms: file storage, so placements survive a NATS restart;
        loads: memory, entries expire with the replica TTL) and bind to them."""
        await self._assets.add(
            KeyValueBucket(
                api.KeyValueConfig(
                    bucket=subjects.CONFERENCE_ROOMS_BUCKET,
                    history=1,
                    storage=api.StorageType.FILE,
                    replicas=self._replicas,
                    description="Parley conference rooms: which replica holds each",
                )
            )
        )
        await self._assets.add(
            KeyValueBucket(
                api.KeyValueConfig(
                    bucket=subjects.CONFERENCE_REPLICAS_BUCKET,
                    history=1,
                    ttl=float(self._replica_ttl),
                    storage=api.StorageType.MEMORY,
                    replicas=self._replicas,
                    description="Parley conference replicas: each live one's load",
                )
            )
        )
        self._rooms = await self._js.key_value(subjects.CONFERENCE_ROOMS_BUCKET)
        self._loads = await self._js.key_value(subjects.CONFERENCE_REPLICAS_BUCKET)

    # -- loads ----------------------------------------------------------------------------

    async def write_load(self, rooms: int, participants: int, draining: bool) -> None:
        load = conference_pb2.ReplicaLoad(
            replica_id=self.replica_id,
            rooms=rooms,
            participants=participants,
            updated_at_ms=self._now_ms(),
            draining=draining,
        )
        with self._watching("load"):
            await self._js.publish(REPLICAS_PREFIX + self.replica_id, load.SerializeToString())

    async def forget_load(self) -> None:
        """This replica stops: its entry goes at once (not after the TTL)."""
        with contextlib.suppress(Exception):
            await self._js.publish(
                REPLICAS_PREFIX + self.replica_id,
                b"",
                headers={"KV-Operation": "DEL"},
            )

    async def loads(self) -> dict[str, conference_pb2.ReplicaLoad]:
        """Every live replica's load (entries within the TTL)."""
        assert self._loads is not None
        found: dict[str, conference_pb2.ReplicaLoad] = {}
        with self._watching("loads"):
            # The bucket's subjects from the stream's state, in one request: the KV's
            # keys() (a watcher) was seen to miss a replica written just before under
            # load, and a replica missing from here is taken for gone (its rooms taken
            # over, a new room placed elsewhere).
            info = await self._js.stream_info(
                f"KV_{subjects.CONFERENCE_REPLICAS_BUCKET}", subjects_filter=REPLICAS_PREFIX + ">"
            )
            keys = [subject.removeprefix(REPLICAS_PREFIX) for subject in info.state.subjects or {}]
            for key in keys:
                try:
                    entry = await self._loads.get(key)
                except nats.js.errors.KeyNotFoundError:
                    continue
                load = _decode(conference_pb2.ReplicaLoad, entry.value)
                if load is not None and self._now_ms() - load.updated_at_ms <= self._ttl_ms:
                    found[key] = load
        return found

    # -- rooms ----------------------------------------------------------------------------

    async def owner(self, app: str, conference_id: str) -> Placed | None:
        """The live replica that holds the room, if any."""
        stored = await self._get(app, conference_id)
        if stored is None:
            return None
        placed, _ = stored
        live = await self.loads()
        return placed if placed.replica_id in live else None

    async def place(self, app: str, conference_id: str) -> Placed:
        """The replica that holds the room, placing it on the least-loaded live one when
        no live replica does."""
        for _ in range(MAX_ATTEMPTS):
            stored = await self._get(app, conference_id)
            live = await self.loads()
            if stored is not None and stored[0].replica_id in live:
                return stored[0]
            chosen = _least_loaded(live, self.replica_id)
            revision = stored[1] if stored is not None else 0
            try:
                written = await self._write(app, conference_id, chosen, revision)
            except Conflict:
                continue
            log.info(
                "room_placed",
                app=app,
                room=subjects.encode_user_id(conference_id),
                replica=chosen,
                took_over=stored[0].replica_id if stored is not None else None,
            )
            return Placed(chosen, written)
        raise ParleyError(
            ErrorCode.ERROR_CODE_UNAVAILABLE, "the room's placement changes too fast; retry"
        )

    async def release(self, app: str, conference_id: str, revision: int) -> None:
        """The room ended here: remove its key if it is still the placement written at
        `revision` (a newer one, by a replica that took over, stays)."""
        key = subjects.conference_key(app, conference_id)
        headers = {
            "KV-Operation": "PURGE",
            "Nats-Rollup": "sub",
            api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(revision),
        }
        with contextlib.suppress(Conflict), self._watching("release"):
            await self._js.publish(ROOMS_PREFIX + key, b"", headers=headers)

    async def _get(self, app: str, conference_id: str) -> tuple[Placed, int] | None:
        assert self._rooms is not None
        key = subjects.conference_key(app, conference_id)
        try:
            with self._watching("get"):
                entry = await self._rooms.get(key, validate_keys=False)
        except nats.js.errors.KeyNotFoundError as exc:
            # A room that ended (release left a purge marker as the key's last message)
            # has no placement, but a new one is written over the marker's revision.
            marker = getattr(exc, "entry", None)
            if marker is None or not marker.revision:
                return None
            return Placed("", int(marker.revision)), int(marker.revision)
        placement = _decode(conference_pb2.RoomPlacement, entry.value)
        revision = int(entry.revision or 0)
        if placement is None or not placement.replica_id:
            return Placed("", revision), revision
        return Placed(placement.replica_id, revision), revision

    async def _write(self, app: str, conference_id: str, replica_id: str, last: int) -> int:
        key = subjects.conference_key(app, conference_id)
        value = conference_pb2.RoomPlacement(replica_id=replica_id, placed_at_ms=self._now_ms())
        headers = {api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(last)}
        with self._watching("place"):
            ack = await self._js.publish(
                ROOMS_PREFIX + key, value.SerializeToString(), headers=headers
            )
        return int(ack.seq)

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    @contextlib.contextmanager
    def _watching(self, operation: str) -> Iterator[None]:
        """A compare that failed is a Conflict; a bucket (or JetStream) gone is made again,
        and the request answers UNAVAILABLE."""
        try:
            yield
        except nats.js.errors.KeyValueError:
            raise
        except nats.js.errors.APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:
                raise Conflict(operation) from exc
            if isinstance(exc, MISSING_ERRORS):
                self._assets.lost(f"conference {operation}: {type(exc).__name__}")
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNAVAILABLE, f"room placement failed ({exc}); retry"
            ) from exc
        except MISSING_ERRORS as exc:
            self._assets.lost(f"conference {operation}: {type(exc).__name__}")
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNAVAILABLE, "room placement is not available; retry"
            ) from exc
        except nats.errors.Error as exc:
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNAVAILABLE, f"room placement failed ({exc}); retry"
            ) from exc


def _least_loaded(live: dict[str, conference_pb2.ReplicaLoad], me: str) -> str:
    """The live replica with the fewest participants (then rooms) that is not stopping;
    this replica when none is known (its own load may not be written yet)."""
    candidates = [load for load in live.values() if not load.draining]
    if not candidates:
        return me
    best = min(candidates, key=lambda load: (load.participants, load.rooms, load.replica_id))
    return best.replica_id


def _decode(message_type: type[M], data: bytes | None) -> M | None:
    message = message_type()
    try:
        message.ParseFromString(data or b"")
    except DecodeError:
        return None
    return message
