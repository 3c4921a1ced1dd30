"""The call records: one key per call in the KV bucket `calls`, changed by compare-and-set.

Every write names the revision it was computed from (a new call: none), so replicas may act
on any call at once and exactly one write of a race lands; the loser reads the record again
and computes its change anew (`change`). The bucket is file-stored (replicated over
`PARLEY_JETSTREAM_REPLICAS`): an answered call survives a NATS restart. An ended record is
written with a per-message TTL of the linger time, so it vanishes by itself and leaves no
delete marker behind.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import nats.js.errors
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.client import KV_PRE_TEMPLATE
from nats.js.kv import KeyValue

from parley.v1 import calls_pb2
from parley_calls import records
from parley_protocol import subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.assets import MISSING_ERRORS, JetStreamAssets, KeyValueBucket
from parley_service.logs import get_logger

log = get_logger("parley.calls.store")

CALLS_PREFIX = KV_PRE_TEMPLATE.format(bucket=subjects.CALLS_BUCKET)
# JetStream's "wrong last sequence" error codes (the compare of a compare-and-set failed).
_WRONG_LAST_SEQUENCE = (10071, 10164)
# A change that keeps losing races this often gives up (retryable) rather than spin.
MAX_ATTEMPTS = 20

Transition = Callable[[calls_pb2.CallRecord], "calls_pb2.CallRecord | None"]


class Conflict(Exception):
    """The record changed since it was read (or exists already, for a new call)."""


@dataclass(frozen=True, slots=True)
class Stored:
    record: calls_pb2.CallRecord
    revision: int


@dataclass(frozen=True, slots=True)
class Change:
    """The record before and after a transition; `changed` when this change wrote it."""

    before: calls_pb2.CallRecord
    after: calls_pb2.CallRecord
    changed: bool


def decode(data: bytes | None) -> calls_pb2.CallRecord | None:
    record = calls_pb2.CallRecord()
    try:
        record.ParseFromString(data or b"")
    except DecodeError:
        return None
    return record


class CallStore:
    def __init__(
        self, nc: NATS, assets: JetStreamAssets, replicas: int, linger_seconds: float
    ) -> None:
        self._js = nc.jetstream()
        self._assets = assets
        self._replicas = replicas
        # Nats-TTL counts whole seconds.
        self._linger_seconds = max(1, math.ceil(linger_seconds))
        self._kv: KeyValue | None = None

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("CallStore.open() was not called")
        return self._kv

    async def open(self) -> None:
        """Declare the bucket (file storage, one revision, no bucket TTL) and bind to it."""
        config = api.KeyValueConfig(
            bucket=subjects.CALLS_BUCKET,
            history=1,
            storage=api.StorageType.FILE,
            replicas=self._replicas,
            description="Parley calls: one record per call",
        )
        await self._assets.add(KeyValueBucket(config))
        self._kv = await self._js.key_value(subjects.CALLS_BUCKET)

    async def get(self, application_key: str, call_id: str) -> Stored | None:
        key = subjects.call_key(application_key, call_id)
        try:
            with self._watching("get"):
                entry = await self.kv.get(key, validate_keys=False)
        except nats.js.errors.KeyNotFoundError:
            return None
        record = decode(entry.value)
        if record is None:
            log.warning("call_record_unreadable", key=key)
            return None
        return Stored(record, int(entry.revision or 0))

    async def create(self, record: calls_pb2.CallRecord) -> bool:
        """Write a new call; False when its key is taken already."""
        try:
            await self._write(record, 0)
        except Conflict:
            return False
        return True

    async def change(self, application_key: str, call_id: str, transition: Transition) -> Change:
        """Apply `transition` to the call's record by compare-and-set, again on the newer
        record whenever another write came first.

        Raises NOT_FOUND (no such call in this application, or it ended longer ago than the
        linger), the transition's own errors, or UNAVAILABLE.
        """
        for _ in range(MAX_ATTEMPTS):
            stored = await self.get(application_key, call_id)
            if stored is None:
                raise ParleyError(
                    ErrorCode.ERROR_CODE_NOT_FOUND,
                    f"no call {call_id} in this application",
                    "call_id",
                )
            after = transition(stored.record)
            if after is None:
                return Change(stored.record, stored.record, changed=False)
            try:
                await self._write(after, stored.revision)
            except Conflict:
                continue
            return Change(stored.record, after, changed=True)
        raise ParleyError(
            ErrorCode.ERROR_CODE_UNAVAILABLE, f"call {call_id} changes too fast; retry", "call_id"
        )

    async def watch(self) -> KeyValue.KeyWatcher:
        """Every record now, then every change (deletions and purges as such)."""
        with self._watching("watch"):
            return await self.kv.watchall()

    async def _write(self, record: calls_pb2.CallRecord, last_revision: int) -> None:
        """Write `record` only if its key is still at `last_revision` (0: absent); an ended
        record expires after the linger."""
        key = subjects.call_key(record.application_key, record.call_id)
        headers = {api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(last_revision)}
        ttl = self._linger_seconds if record.phase == records.ENDED else None
        try:
            with self._watching("write"):
                await self._js.publish(
                    CALLS_PREFIX + key, record.SerializeToString(), headers=headers, msg_ttl=ttl
                )
        except nats.js.errors.APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:
                raise Conflict(key) from exc
            raise

    @contextlib.contextmanager
    def _watching(self, operation: str) -> Iterator[None]:
        """An operation that finds the bucket (or JetStream) gone has it made again and
        answers UNAVAILABLE: the client may retry."""
        try:
            yield
        except nats.js.errors.KeyValueError:
            raise  # about the key (not found, say), not the bucket
        except MISSING_ERRORS as exc:
            self._assets.lost(f"calls {operation}: {type(exc).__name__}")
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNAVAILABLE, "the call store is not available; retry"
            ) from exc
