"""Ends calls nobody ends: those whose deadline passed (TIMEOUT before a device rang,
NO_ANSWER after) and answered calls one of whose parties' sessions is gone for good.

Every replica sweeps. Each keeps an index of the bucket's records by watching it (rebuilt
after the assets were restored: a NATS restart), and ends a due call by compare-and-set:
one replica's write lands, and only that replica tells the parties.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

import nats.errors
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from parley.v1 import calls_pb2, common_pb2
from parley_calls import records
from parley_calls.events import CallEvents
from parley_calls.metrics import CALLS_IN_PHASE
from parley_calls.store import CallStore, decode
from parley_protocol import subjects
from parley_protocol.clock import Clock, now_ms
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import tasks
from parley_service.assets import RETRYABLE_ERRORS
from parley_service.logs import get_logger
from parley_service.presence import PresenceReader

log = get_logger("parley.calls.sweeper")

PHASES = (records.INITIATING, records.RINGING, records.ANSWERED, records.ENDED)
# Calls ended at once per batch of a sweep.
BATCH = 32
# A party must be missing from presence in this many checks in a row before its call ends:
# right after a NATS restart the presence bucket (memory) is empty until the gateways have
# written their sessions again, which takes them about a second.
PARTY_MISSES = 2
WATCH_RETRY_FIRST_SECONDS = 0.1
WATCH_RETRY_MAX_SECONDS = 2.0
# What a watch that cannot begin raises while NATS or the bucket comes back.
WATCH_ERRORS: tuple[type[BaseException], ...] = (ParleyError, *RETRYABLE_ERRORS)

PARTY_GONE = common_pb2.Error(
    code=ErrorCode.ERROR_CODE_UNAVAILABLE, reason="the other party is gone"
)

Transition = Callable[[calls_pb2.CallRecord, int], "calls_pb2.CallRecord | None"]


class Sweeper:
    def __init__(
        self,
        store: CallStore,
        events: CallEvents,
        presence: PresenceReader,
        clock: Clock,
        sweep_seconds: float,
        party_check_seconds: float,
        linger_seconds: float,
    ) -> None:
        self._store = store
        self._events = events
        self._presence = presence
        self._clock = clock
        self._sweep_seconds = sweep_seconds
        self._party_check_seconds = party_check_seconds
        self._linger_ms = int(linger_seconds * 1000)
        # Every record of the bucket by key, as the watch last told (or this replica wrote).
        self.index: dict[str, calls_pb2.CallRecord] = {}
        # Set once the watch has delivered every record that was there when it began.
        self.synced = asyncio.Event()
        # Answered calls whose parties were not all found, by key: checks missed in a row.
        self._misses: dict[str, int] = {}
        self._next_party_check = 0.0
        self._watch: asyncio.Task[None] | None = None
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._watch = asyncio.create_task(self._watch_loop(), name="calls-watch")
        self._loop = asyncio.create_task(self._sweep_loop(), name="calls-sweep")

    async def stop(self) -> None:
        await tasks.stop(self._watch, self._loop)
        self._watch = self._loop = None

    async def rebuild(self) -> None:
        """Watch the bucket anew (its assets were made again: NATS may have restarted, and a
        watch of the old server hears nothing more); the index is replaced once caught up."""
        self.synced.clear()
        self._misses.clear()
        await tasks.stop(self._watch)
        self._watch = asyncio.create_task(self._watch_loop(), name="calls-watch")
        log.info("calls_index_rebuilding")

    # the index ------------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        delay = WATCH_RETRY_FIRST_SECONDS
        while True:
            try:
                watcher = await self._store.watch()
            except WATCH_ERRORS as exc:
                log.info("calls_watch_retry", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, WATCH_RETRY_MAX_SECONDS)
                continue
            try:
                await self._follow(watcher)
                return  # the watch was stopped
            except Exception:
                log.exception("calls_watch_failed")
            finally:
                with contextlib.suppress(nats.errors.Error):
                    await watcher.stop()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        """Build a fresh index from the watch, put it in place once caught up, then keep it."""
        fresh: dict[str, calls_pb2.CallRecord] = {}
        async for entry in watcher:
            if entry is None:  # every record there was at the start is in
                self.index = fresh
                self.synced.set()
                log.info("calls_index_synced", calls=len(fresh))
                continue
            if entry.operation in (KV_DEL, KV_PURGE):
                fresh.pop(entry.key, None)
                continue
            record = decode(entry.value)
            if record is None:
                log.warning("call_record_unreadable", key=entry.key)
                continue
            fresh[entry.key] = record

    # sweeping -------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_seconds)
            try:
                await self.sweep()
                if self._clock.monotonic() >= self._next_party_check:
                    self._next_party_check = self._clock.monotonic() + self._party_check_seconds
                    await self.check_parties()
            except Exception:
                log.exception("calls_sweep_failed")

    async def sweep(self) -> int:
        """End every call whose deadline passed; forget ended records past their linger (the
        server drops them by their TTL). Returns how many calls this replica ended."""
        now = now_ms(self._clock)
        due = [
            r
            for r in self.index.values()
            if r.phase != records.ENDED and r.deadline_ms and r.deadline_ms <= now
        ]
        ended = await self._end_all(due, records.expire, None)
        for key, record in list(self.index.items()):
            if record.phase == records.ENDED and record.ended_at_ms + self._linger_ms <= now:
                del self.index[key]
        self._count_phases()
        return ended

    async def check_parties(self) -> int:
        """End answered calls one of whose parties' sessions has been gone (no presence
        record, not even a resumable one) for PARTY_MISSES checks. Returns how many ended."""
        answered = {k: r for k, r in self.index.items() if r.phase == records.ANSWERED}
        for key in set(self._misses) - set(answered):
            del self._misses[key]
        gone: list[calls_pb2.CallRecord] = []
        for key, record in answered.items():
            try:
                present = await self._parties_present(record)
            except ParleyError as err:
                log.warning("calls_party_check_failed", error=err.reason)
                return 0
            if present:
                self._misses.pop(key, None)
                continue
            self._misses[key] = self._misses.get(key, 0) + 1
            if self._misses[key] >= PARTY_MISSES:
                gone.append(record)
        return await self._end_all(gone, records.abandon, PARTY_GONE)

    async def _parties_present(self, record: calls_pb2.CallRecord) -> bool:
        """Both parties' sessions exist; a remote leg is not a session: its service ends the
        call when the leg goes, and the caller's media notices when its replica does."""
        app = record.application_key
        for target in (
            records.caller_target(record),
            records.Target(record.callee_user_id, record.answered_session_id),
        ):
            if not records.is_leg(target) and not await self._presence.session_exists(
                app, target.user_id, target.session_id
            ):
                return False
        return True

    async def _end_all(
        self,
        due: Iterable[calls_pb2.CallRecord],
        transition: Transition,
        error: common_pb2.Error | None,
    ) -> int:
        pending = list(due)
        ended = 0
        for start in range(0, len(pending), BATCH):
            batch = pending[start : start + BATCH]
            results = await asyncio.gather(*(self._end(r, transition, error) for r in batch))
            ended += sum(results)
        return ended

    async def _end(
        self,
        record: calls_pb2.CallRecord,
        transition: Transition,
        error: common_pb2.Error | None,
    ) -> bool:
        key = subjects.call_key(record.application_key, record.call_id)
        try:
            change = await self._store.change(
                record.application_key,
                record.call_id,
                lambda current: transition(current, now_ms(self._clock)),
            )
        except ParleyError as err:
            if err.code == ErrorCode.ERROR_CODE_NOT_FOUND:
                self.index.pop(key, None)  # expired meanwhile
            else:
                log.warning("calls_sweep_end_failed", call=record.call_id, error=err.reason)
            return False
        if not change.changed:
            return False  # another replica (or a party) ended it first
        self.index[key] = change.after
        self._misses.pop(key, None)
        await self._events.ended(change.before, change.after, error=error)
        return True

    def _count_phases(self) -> None:
        counts = dict.fromkeys(PHASES, 0)
        for record in self.index.values():
            if record.phase in counts:
                counts[record.phase] += 1
        for phase, count in counts.items():
            CALLS_IN_PHASE.labels(records.phase_name(phase)).set(count)
