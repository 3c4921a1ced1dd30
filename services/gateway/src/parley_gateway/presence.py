"""The presence writer: one entry per device session in the NATS KV bucket `presence`
(any service reads it through `parley_service.presence.PresenceReader`).

An entry is keyed by application, user and session. While the session's connection is up
it says where (gateway, connection) and what the device can do; when the connection ends
without a Goodbye it is marked disconnected (the device is offline) and stays as the record
a resume checks. Each entry expires `ttl` seconds after its last write (at least the resume
window), so the entries of a gateway that crashed disappear by themselves; live gateways
rewrite theirs every ttl/3 from one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

import nats.js.errors
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from parley.v1 import presence_pb2
from parley_protocol import subjects
from parley_service.acked import AckedPublisher
from parley_service.assets import MISSING_ERRORS, JetStreamAssets, KeyValueBucket, asset_missing
from parley_service.logs import get_logger
from parley_service.presence import PRESENCE_PREFIX, PRESENCE_STREAM

log = get_logger("parley.gateway.presence")

# A refresh round has one write in this many acknowledged. JetStream stores the writes of
# one connection to the bucket in the order they were sent, so that acknowledgement says
# the writes before it since the last one were stored too; when it fails, the round counts
# all of them failed. The acknowledgements (a future, a timer and a reply to read each)
# were most of a refresh's cost, and the refresh a fifth of an idle gateway's.
REFRESH_ACK_EVERY = 16
# Acknowledged writes of a refresh round waiting at once (each vouching for its group).
REFRESH_ACKS_IN_FLIGHT = 8


class Device(Protocol):
    """One signed-in connection, as presence stores it (a Session is one)."""

    @property
    def application_key(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def connection_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def instance_id(self) -> str: ...
    @property
    def token_digest(self) -> bytes: ...
    @property
    def connected_at_ms(self) -> int: ...
    @property
    def calling(self) -> bool: ...
    @property
    def messaging(self) -> bool: ...
    @property
    def active_connection(self) -> bool: ...
    @property
    def managed_push(self) -> bool: ...
    @property
    def listening(self) -> bool: ...


D = TypeVar("D", bound=Device)


class PresenceStore:
    def __init__(self, nc: NATS, gateway_id: str, ttl_seconds: float) -> None:
        self.nc = nc
        self._js = nc.jetstream()
        self._gateway_id = gateway_id
        self._ttl = ttl_seconds
        self.ttl_seconds = ttl_seconds  # the bucket's, once open() found it shorter
        self._bucket = subjects.PRESENCE_BUCKET
        self._stream = PRESENCE_STREAM
        self._kv: KeyValue | None = None
        self._assets: JetStreamAssets | None = None
        # Puts, the writes made by the thousand, go through here (see acked.py).
        self._puts = AckedPublisher(nc)

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("PresenceStore.open() was not called")
        return self._kv

    async def open(self, assets: JetStreamAssets) -> None:
        """Declare the bucket (TTL, memory storage: it can be rebuilt; direct gets), made now
        and again whenever it is lost, then bind to it."""
        self._assets = assets
        config = KeyValueConfig(
            bucket=self._bucket,
            history=1,
            ttl=self._ttl,
            storage=StorageType.MEMORY,
            direct=True,
            description="Parley presence: one entry per device session",
        )
        await self._puts.start()
        await assets.add(KeyValueBucket(config))
        kv = await self._js.key_value(self._bucket)
        info = await self._js.stream_info(self._stream)
        max_age = info.config.max_age or 0
        # The bucket was made by a gateway configured otherwise: entries live the bucket's
        # TTL, so refresh in time for the shorter of the two.
        self.ttl_seconds = min(self._ttl, max_age) if max_age else self._ttl
        if max_age and abs(max_age - self._ttl) > 0.5:
            log.warning(
                "presence_ttl_differs",
                bucket_ttl_seconds=max_age,
                configured_ttl_seconds=self._ttl,
                refresh_every_seconds=self.refresh_interval,
            )
        self._kv = kv

    @property
    def refresh_interval(self) -> float:
        """Entries are rewritten this often: three times per TTL."""
        return self.ttl_seconds / 3

    def key(self, device: Device) -> str:
        return subjects.presence_key(device.application_key, device.user_id, device.session_id)

    def entry(self, device: Device, disconnected_at_ms: int = 0) -> bytes:
        entry = presence_pb2.PresenceEntry(
            gateway_id=self._gateway_id,
            connection_id=device.connection_id,
            session_id=device.session_id,
            instance_id=device.instance_id,
            connected_at_ms=device.connected_at_ms,
            calling=device.calling,
            messaging=device.messaging,
            active_connection=device.active_connection,
            managed_push=device.managed_push,
            listening=device.listening and not disconnected_at_ms,
            user_id=device.user_id,
            disconnected_at_ms=disconnected_at_ms,
            token_digest=device.token_digest,
        )
        data: bytes = entry.SerializeToString()
        return data

    async def put(self, device: Device) -> None:
        with self._watching("put"):
            await (await self._put(device))

    async def _put(self, device: Device) -> asyncio.Future[None]:
        """Queue the device's entry on the connection (no await before that); the future
        settles once the bucket stored it, as `KeyValue.put` would."""
        _ = self.kv  # raises until open() has bound the bucket
        return await self._puts.publish(PRESENCE_PREFIX + self.key(device), self.entry(device))

    async def delete(self, device: Device) -> None:
        """Remove the device's entry (it said Goodbye), unless another connection resumed its
        session meanwhile."""
        revision = await self._revision_if_ours(device)
        if revision is not None:
            with self._watching("delete"), _unless_changed():
                await self.kv.delete(self.key(device), last=revision, validate_keys=False)

    async def disconnected(self, device: Device, at_ms: int) -> None:
        """The connection ended without a Goodbye: the device is offline, and its entry stays
        (for its TTL: the resume window) as the record a resume checks."""
        revision = await self._revision_if_ours(device)
        if revision is not None:
            entry = self.entry(device, at_ms)
            with self._watching("put"), _unless_changed():
                await self.kv.update(self.key(device), entry, last=revision, validate_keys=False)

    async def _revision_if_ours(self, device: Device) -> int | None:
        """The revision of the device's entry while it still names this connection: a write
        conditional on it cannot undo a resume on another connection in between."""
        found = await self._get(device.application_key, device.user_id, device.session_id)
        if found is None or found[0].connection_id != device.connection_id:
            return None
        return found[1]

    async def record(
        self, application_key: str, user_id: str, session_id: str
    ) -> presence_pb2.PresenceEntry | None:
        """The entry of one device session (connected or not), or None."""
        found = await self._get(application_key, user_id, session_id)
        return None if found is None else found[0]

    async def _get(
        self, application_key: str, user_id: str, session_id: str
    ) -> tuple[presence_pb2.PresenceEntry, int] | None:
        key = subjects.presence_key(application_key, user_id, session_id)
        try:
            with self._watching("get"):
                found = await self.kv.get(key, validate_keys=False)
        except nats.js.errors.KeyNotFoundError:
            return None
        entry = presence_pb2.PresenceEntry()
        try:
            entry.ParseFromString(found.value or b"")
        except DecodeError:
            return None
        return entry, int(found.revision or 0)

    async def forget(
        self, application_key: str, user_id: str, session_id: str, instance_id: str
    ) -> None:
        """Remove the entry of a session the device had before (a reconnect that does not
        resume it names it), if it is this device's."""
        entry = await self.record(application_key, user_id, session_id)
        if entry is not None and entry.instance_id == instance_id:
            key = subjects.presence_key(application_key, user_id, session_id)
            with self._watching("delete"):
                await self.kv.delete(key, validate_keys=False)

    @contextlib.contextmanager
    def _watching(self, operation: str) -> Iterator[None]:
        """An operation that finds the bucket gone has it made again (and re-raises)."""
        try:
            yield
        except MISSING_ERRORS as exc:
            self._check_lost(operation, exc)
            raise

    def _check_lost(self, operation: str, exc: BaseException) -> None:
        if self._assets is not None and asset_missing(exc):
            self._assets.lost(f"presence {operation}: {type(exc).__name__}")

    async def refresh(self, devices: Iterable[D], current: Callable[[D], bool]) -> int:
        """Rewrite the entry (resetting its TTL) of each device still `current` when it is
        written (the list may predate the end of some); returns how many writes failed (or
        were not acknowledged: see REFRESH_ACK_EVERY).

        At most REFRESH_ACKS_IN_FLIGHT acknowledged writes are waited for at once."""
        failed = 0
        acks: list[tuple[asyncio.Future[None], int]] = []  # an acknowledgement, its group
        group = 0  # writes sent since the last acknowledged one
        last: D | None = None  # the last of them
        for device in devices:
            # Checked with no await before the write is queued on the NATS connection: a
            # session ending after this check queues its delete behind our put.
            if not current(device):
                continue
            group += 1
            try:
                if group < REFRESH_ACK_EVERY:
                    await self.nc.publish(PRESENCE_PREFIX + self.key(device), self.entry(device))
                    last = device
                    continue
                acks.append((await self._put(device), group))
            except Exception as exc:
                failed += group
                self._check_lost("put", exc)
            group, last = 0, None
            if len(acks) >= REFRESH_ACKS_IN_FLIGHT:
                failed += await self._settled(acks)
        if last is not None and current(last):
            # The round's last group: its last entry written once more, acknowledged.
            try:
                acks.append((await self._put(last), group))
            except Exception as exc:
                failed += group
                self._check_lost("put", exc)
        if acks:
            failed += await self._settled(acks)
        return failed

    async def _settled(self, acks: list[tuple[asyncio.Future[None], int]]) -> int:
        """Wait for every acknowledgement of `acks` (each settles, at the latest by its
        timeout); empties it and returns how many writes they vouched for failed."""
        await asyncio.wait([ack for ack, _ in acks])
        failed = 0
        for ack, group in acks:
            exc = ack.exception()
            if exc is not None:
                failed += group
                self._check_lost("put", exc)
        acks.clear()
        return failed


@contextlib.contextmanager
def _unless_changed() -> Iterator[None]:
    """A conditional write that lost the race: someone else owns the entry now."""
    try:
        yield
    except nats.js.errors.KeyWrongLastSequenceError:
        log.debug("presence_entry_taken_over")
