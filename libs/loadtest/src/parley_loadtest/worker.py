"""A worker process: its share of the simulated clients, started at the ramp-up rate, then
its share of the traffic, paced evenly over the traffic phase. Everything it sees goes to
the engine as events (events.py) over its pipe, in batches; the engine does the counting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import resource
import time
from collections.abc import Awaitable, Callable, Coroutine
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from parley_loadtest import events as ev
from parley_loadtest import markers
from parley_loadtest.clients import ClientSettings, simulated_client
from parley_loadtest.markers import Marker
from parley_loadtest.plan import WorkerPlan, seq_of
from parley_loadtest.scenario import Scenario
from parley_protocol import heap

if TYPE_CHECKING:
    from parley_client import Call, ParleyClient

FLUSH_SECONDS = 0.25
# Clients of one worker starting at once (the ramp-up rate paces them; this bounds a backlog).
START_CONCURRENCY = 200
TERMINATE_SECONDS = 60.0
HANGUP_SECONDS = 10.0


def worker_main(
    plan: WorkerPlan, scenario: Scenario, settings: ClientSettings, conn: Connection
) -> None:
    """The entry point of a worker process (multiprocessing, spawned)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(Worker(plan, scenario, settings, conn).run())


@functools.cache
def _probe_class() -> type[Any]:
    """A client feature that hears each connection (with the gateway's id) and its end
    (one class for every client: a class per client cost a worker 9% of its ramp-up)."""
    from parley_client import Connected, Feature, ParleyError

    class Probe(Feature):
        name = "loadtest-probe"
        bodies: frozenset[str] = frozenset()

        def __init__(self, worker: Worker, user: str) -> None:
            self._worker, self._user = worker, user

        async def on_connected(self, connected: Connected) -> None:
            self._worker.emit(
                "connected", time.time(), self._user, connected.gateway_id, connected.reconnected
            )

        async def on_disconnected(self, reason: ParleyError) -> None:
            if not self._worker.stopping:
                self._worker.emit("disconnected", time.time(), self._user, str(reason))

    return Probe


@functools.cache
def _listener_class() -> type[Any]:
    from parley_client import (
        CallClientListener,
        ClientListener,
        MessageClientListener,
    )

    class Listener(ClientListener, CallClientListener, MessageClientListener):
        """One client's: records arrivals by their markers, answers every incoming call."""

        def __init__(self, worker: Worker, user: str) -> None:
            self._worker, self._user = worker, user

        def on_client_failed(self, client: Any, error: Any) -> None:
            if not self._worker.stopping:
                self._worker.emit("client_failed", time.time(), self._user, str(error))

        def on_incoming_call(self, call_client: Any, call: Any) -> None:
            now = time.time()
            marker = markers.read(call.headers)
            if marker is not None and marker.run_id == self._worker.run_id:
                self._worker.emit("call_arrived", now, marker.seq, now - marker.sent_at)
            elif marker is not None:
                self._worker.emit("stale", now, "call")
            answering = call.answer()
            answering.add_done_callback(_quiet)

        def on_incoming_message(self, message_client: Any, message: Any) -> None:
            now = time.time()
            marker = markers.read(message.headers, message.text_body)
            if marker is None:
                return
            if marker.run_id != self._worker.run_id:
                self._worker.emit("stale", now, "message")
                return
            self._worker.emit("msg_arrived", now, marker.seq, now - marker.sent_at)

        def on_message_sent(self, message_client: Any, message: Any, recipient_id: str) -> None:
            marker = markers.read(message.headers, message.text_body)
            if marker is not None and marker.run_id == self._worker.run_id:
                self._worker.emit("msg_accepted", time.time(), marker.seq)

        def on_message_failed(self, message_client: Any, message: Any, info: Any) -> None:
            marker = markers.read(message.headers, message.text_body)
            if marker is not None and marker.run_id == self._worker.run_id:
                self._worker.emit("msg_failed", time.time(), marker.seq, str(info.error))

    return Listener


def _quiet(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # an answer that failed ends the call: the caller reports it


class Worker:
    def __init__(
        self, plan: WorkerPlan, scenario: Scenario, settings: ClientSettings, conn: Connection
    ) -> None:
        self.plan, self.scenario, self.settings, self.conn = plan, scenario, settings, conn
        self.run_id = plan.run_id
        self.stopping = False
        self._events: list[ev.Event] = []
        self._orders: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._clients: dict[str, ParleyClient] = {}
        self._started: list[str] = []  # users whose start() succeeded, in start order
        self._rng = random.Random(plan.index)
        self._media_lock = asyncio.Lock()

    def emit(self, *event: Any) -> None:
        self._events.append(event)

    # -- the pipe ----------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._events:
            batch, self._events = self._events, []
            self.conn.send((ev.EVENTS, batch))

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self._flush()

    def _on_order(self) -> None:
        try:
            order = self.conn.recv()
        except (EOFError, OSError):  # the engine is gone: stop
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
            order = (ev.STOP,)
        self._orders.put_nowait(order)

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self._on_order)
        flusher = asyncio.create_task(self._flusher())
        try:
            # Out of the collector's sight: the modules loaded; then the clients started,
            # which stay until the end (at CPython's defaults the collector took 14% of a
            # worker's ramp-up, walking the clients started so far again and again).
            heap.settle()
            await self._ramp_up()
            heap.settle()
            self._flush()
            self.conn.send((ev.RAMPED,))
            order = await self._orders.get()
            if order[0] == ev.GO:
                await self._traffic(float(order[1]))
                self._flush()
                self.conn.send((ev.TRAFFIC_DONE,))
                order = await self._orders.get()
            self.stopping = True
            connected = [u for u, c in self._clients.items() if c.is_started]
            not_connected = sorted(set(self._clients) - set(connected))
            self._flush()
            self.conn.send(
                (ev.FINAL, {"connected": len(connected), "not_connected": not_connected})
            )
        finally:
            self.stopping = True
            flusher.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(
                        *(c.terminate() for c in self._clients.values()), return_exceptions=True
                    ),
                    TERMINATE_SECONDS,
                )
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(self.conn.fileno())

    async def _ramp_up(self) -> None:
        plan = self.plan
        interval = plan.workers / self.scenario.ramp_up_per_second
        began = time.time() + (plan.index / plan.workers) * interval
        gate = asyncio.Semaphore(START_CONCURRENCY)
        tasks = []
        for n, user in enumerate(plan.users):
            await _sleep_until(began + n * interval)
            tasks.append(asyncio.create_task(self._start(user, n < plan.media_users, gate)))
        await asyncio.gather(*tasks)

    async def _start(self, user: str, media: bool, gate: asyncio.Semaphore) -> None:
        calling = media or self.plan.counts.calls > 0
        client = simulated_client(self.settings, user, media=media, calling=calling, messaging=True)
        listener = _listener_class()(self, user)
        client.add_client_listener(listener)
        client.add_feature(_probe_class()(self, user))
        client.message_client.add_message_client_listener(listener)
        if calling:
            client.call_client.add_call_client_listener(listener)
        if media:
            from parley_client.sources import ToneSource

            client.audio_controller.set_source(ToneSource(440 + 110 * (len(self._clients) % 4)))
        self._clients[user] = client
        async with gate:
            began = time.perf_counter()
            try:
                await client.start()
                await client.start_listening_on_active_connection()
            except Exception as exc:  # counted and reported, never hidden
                self.emit("start_failed", time.time(), user, ev.describe(exc))
                return
            self.emit("started", time.time(), user, time.perf_counter() - began)
        self._started.append(user)

    # -- traffic -----------------------------------------------------------------------------

    async def _traffic(self, t0: float) -> None:
        plan, scenario = self.plan, self.scenario
        media = [self._clients[u] for u in plan.users[: plan.media_users] if u in self._started]
        signalling = [u for u in self._started if u not in plan.users[: plan.media_users]]
        pairs: asyncio.Queue[tuple[ParleyClient, ParleyClient]] = asyncio.Queue()
        for a, b in zip(signalling[0::2], signalling[1::2], strict=False):
            pairs.put_nowait((self._clients[a], self._clients[b]))
        singles: asyncio.Queue[ParleyClient] = asyncio.Queue()
        for client in media:
            singles.put_nowait(client)
        senders = [self._clients[u] for u in self._started]
        counts = plan.counts
        calls, conferences, phones = scenario.calls, scenario.conferences, scenario.phone_calls

        async def app_call(seq: int, k: int) -> None:
            if len(signalling) < 2:
                self.emit("call_failed", time.time(), "call", seq, "no two connected users")
                return
            caller, callee = await pairs.get()
            try:
                await self._call("call", seq, caller, callee.user_id or "", calls)
            finally:
                pairs.put_nowait((caller, callee))

        async def media_call(seq: int, k: int) -> None:
            if len(media) < 2:
                self.emit("call_failed", time.time(), "media_call", seq, "no two media clients")
                return
            async with self._media_lock:  # both at once, or two calls could hold one each
                caller, callee = await singles.get(), await singles.get()
            try:
                await self._call("media_call", seq, caller, callee.user_id or "", calls)
            finally:
                singles.put_nowait(caller)
                singles.put_nowait(callee)

        async def join(seq: int, k: int) -> None:
            room = f"{scenario.user_prefix}-{self.run_id}-room-{k // conferences.room_size}"
            await self._single("conference", seq, room, singles, media, conferences)

        async def phone(seq: int, k: int) -> None:
            await self._single("phone", seq, phones.number, singles, media, phones)

        def message(seq: int, k: int) -> None:
            self._message(seq, senders)

        paced: list[Awaitable[list[asyncio.Task[None]]]] = [
            self._pace(t0, "call", counts.calls, app_call),
            self._pace(t0, "media_call", counts.media_calls, media_call),
            self._pace(t0, "conference", counts.conference_joins, join),
            self._pace(t0, "phone", counts.phone_calls, phone),
        ]
        messages = asyncio.create_task(self._pace_sync(t0, counts.messages, message))
        tasks = [t for batch in await asyncio.gather(*paced) for t in batch]
        await messages
        await asyncio.gather(*tasks)

    async def _pace(
        self, t0: float, kind: str, count: int, job: Callable[[int, int], Coroutine[Any, Any, None]]
    ) -> list[asyncio.Task[None]]:
        """Start `count` jobs evenly over the traffic phase (this worker's slot in each
        interval, so the workers' jobs interleave)."""
        tasks: list[asyncio.Task[None]] = []
        if not count:
            return tasks
        interval = self.scenario.duration_seconds / count
        offset = (self.plan.index + 0.5) / self.plan.workers
        for k in range(count):
            await _sleep_until(t0 + (k + offset) * interval)
            tasks.append(asyncio.create_task(job(seq_of(self.plan.index, kind, k), k)))
        return tasks

    async def _pace_sync(self, t0: float, count: int, job: Callable[[int, int], None]) -> None:
        if not count:
            return
        interval = self.scenario.duration_seconds / count
        offset = (self.plan.index + 0.5) / self.plan.workers
        for k in range(count):
            await _sleep_until(t0 + (k + offset) * interval)
            job(seq_of(self.plan.index, "message", k), k)

    def _message(self, seq: int, senders: list[ParleyClient]) -> None:
        from parley_client import WritableMessage

        now = time.time()
        if not senders:
            self.emit("msg_send_failed", now, seq, "no connected client to send from")
            return
        sender = self._rng.choice(senders)
        everyone = self.plan.everyone
        to = self._rng.choice(everyone)
        while to == sender.user_id:
            to = self._rng.choice(everyone)
        marker = Marker(self.run_id, seq, now)
        self.emit("msg_sent", now, seq)
        try:
            sender.message_client.send(WritableMessage([to], marker.text(), marker.headers()))
        except Exception as exc:
            self.emit("msg_send_failed", time.time(), seq, ev.describe(exc))

    async def _single(
        self,
        kind: str,
        seq: int,
        to: str,
        singles: asyncio.Queue[ParleyClient],
        media: list[ParleyClient],
        settings: Any,
    ) -> None:
        if not media:
            self.emit("call_failed", time.time(), kind, seq, "no connected media client")
            return
        async with self._media_lock:
            client = await singles.get()
        try:
            await self._call(kind, seq, client, to, settings)
        finally:
            singles.put_nowait(client)

    async def _call(
        self, kind: str, seq: int, caller: ParleyClient, to: str, settings: Any
    ) -> None:
        """Place one call of `kind`, wait until it is established, hold it, hang up."""
        sent = time.time()
        headers = Marker(self.run_id, seq, sent).headers()
        try:
            calls = caller.call_client
            call: Call
            if kind == "conference":
                call = calls.call_conference(to, headers)
            elif kind == "phone":
                call = calls.call_phone_number(to, headers)
            else:
                call = calls.call_user(to, headers)
        except Exception as exc:
            self.emit("call_failed", time.time(), kind, seq, ev.describe(exc))
            return
        self.emit("call_placed", sent, kind, seq)
        try:
            await call.wait_established(settings.timeout_seconds)
            now = time.time()
            self.emit("call_established", now, kind, seq, now - sent)
            await asyncio.sleep(settings.hold_seconds)
            await asyncio.wait_for(call.hangup(), HANGUP_SECONDS)
            details = await call.wait_ended(HANGUP_SECONDS)
            cause = details.end_cause.name if details.end_cause else "NONE"
            self.emit("call_ended", time.time(), kind, seq, cause)
        except Exception as exc:  # counted and reported, never hidden
            self.emit("call_failed", time.time(), kind, seq, ev.describe(exc))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(call.hangup(), HANGUP_SECONDS)


async def _sleep_until(at: float) -> None:
    delay = at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
