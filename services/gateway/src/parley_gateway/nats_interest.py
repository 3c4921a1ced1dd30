"""Many NATS subscriptions on one connection, with no task or queue per subscription.

nats-py gives every `subscribe(cb=...)` its own asyncio.Queue and Task: about 4.8 KiB per
subscription measured with tracemalloc (3.9 KiB without a callback: the Queue alone is
~3 KiB). A gateway holds one subscription per connected user, so this module registers
small `_Interest` objects straight into the client's subscription table instead. nats-py's
reader hands each message to `interest._pending_queue.put_nowait`, which here is one
queue shared by every interest and drained by one task; its reconnect logic replays them
like any subscription. That costs a couple of hundred bytes per subject.

This leans on nats-py internals (`_subs`, `_sid`, `_send_command`, `_send_unsubscribe`,
and the reader calling `_pending_queue.put_nowait`), so nats-py is bounded to the minor
version it is tested with. `SubjectMux` checks the attributes when made, and `start()`
sends itself a probe through the light path: when the probe does not come back (or
anything raises) it logs `nats_light_mode_failed` and moves every subject to ordinary
subscriptions. A nats-py change can cost memory, not correctness. `mux.light` and the
gauge `parley_gateway_nats_light_mode` tell which mode is in use.

In light mode the mux also takes its messages before nats-py builds a `Msg` for them (it
wraps the connection's `_process_msg` for its own sids): no header dict, no Msg object, just
a `Delivery` of the subject, the payload and the resume window's event number, read
straight from the raw headers. That halves the per-event cost of the numbered events the
window republishes (nats-py parses every header line of every message). The self-test's
probe takes the same path, so a nats-py that calls it differently is caught too.

Both modes go through `SubjectMux._put`: a message that finds the queue full is dropped and
counted on `parley_gateway_device_events_dropped_total{reason="queue_full"}`. (In light
mode the interests' `_pending_queue` is an `_Inlet` whose `put_nowait` is `_put` and never
raises, so nats-py's own slow-consumer path is not taken. In fallback mode nats-py's
per-subscription queue comes first, but its callback moves each message on at once: only a
stalled event loop could fill it, and nats-py would report that as a slow consumer through
the connection's error callback.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.protocol import command as prot_command

from parley_gateway.metrics import DROPPED, NATS_LIGHT_MODE
from parley_service.bus import flush_queued
from parley_service.logs import get_logger

log = get_logger("parley.gateway.nats")

# The header the resume window's republished copies carry their number (stream sequence) in.
_SEQUENCE_HEADER = b"\r\nNats-Sequence:"
# The header a publisher's trace context comes in (parley_service.tracing).
_TRACEPARENT_HEADER = b"\r\ntraceparent:"

DEFAULT_QUEUE_SIZE = 65_536
PROBE_TIMEOUT = 2.0
DROP_LOG_INTERVAL = 5.0  # seconds between two device_event_dropped lines


class Delivery:
    """One message for the router: subject, payload, the event number (0 if none), and the
    trace it was published in when that trace is recorded ("" otherwise)."""

    __slots__ = ("data", "sequence", "subject", "traceparent")

    def __init__(self, subject: str, data: bytes, sequence: int, traceparent: str = "") -> None:
        self.subject = subject
        self.data = data
        self.sequence = sequence
        self.traceparent = traceparent

    @classmethod
    def of(cls, msg: Msg) -> Delivery:
        headers = msg.headers or {}
        sequence = headers.get("Nats-Sequence", "0")
        return cls(
            msg.subject,
            msg.data,
            int(sequence) if sequence.isdigit() else 0,
            recorded(headers.get("traceparent", "")),
        )


def sequence_of(headers: bytes | None) -> int:
    """The Nats-Sequence header of a raw header block (`NATS/1.0\r\nName: value...`), or 0."""
    value = _header(headers, _SEQUENCE_HEADER)
    return int(value) if value.isdigit() else 0


def traceparent_of(headers: bytes | None) -> str:
    """The traceparent header of a raw header block when its trace is recorded, else ""."""
    value = _header(headers, _TRACEPARENT_HEADER)
    return recorded(value.decode("ascii", "replace")) if value else ""


def recorded(traceparent: str) -> str:
    """`traceparent` when it is one (`00-<trace id>-<span id>-<flags>`) whose sampled flag
    is set, else "": a trace nobody records is not worth its bytes on every event frame."""
    if len(traceparent) != 55 or traceparent[2] + traceparent[35] + traceparent[52] != "---":
        return ""
    try:
        return traceparent if int(traceparent[53:], 16) & 1 else ""
    except ValueError:
        return ""


def _header(headers: bytes | None, name: bytes) -> bytes:
    """The value of header `name` (given as b"\r\nName:") in a raw header block, or b""."""
    if not headers:
        return b""
    at = headers.find(name)
    if at < 0:
        return b""
    start = at + len(name)
    end = headers.find(b"\r\n", start)
    return headers[start : end if end >= 0 else len(headers)].strip()


class _Inlet:
    """An interest's `_pending_queue`: nats-py's reader calls its `put_nowait`, which is
    `SubjectMux._put` (it queues, or counts a drop; it never raises)."""

    __slots__ = ("put_nowait",)

    def __init__(self, put: Callable[[Msg | Delivery], None]) -> None:
        self.put_nowait = put


class _Interest:
    """What nats-py's reader, reconnect and close paths read of a Subscription, and no more."""

    __slots__ = ("_id", "_mux", "_pending_queue", "_pending_size", "_received", "_subject")

    # Constant parts of the Subscription protocol, shared by every interest.
    _queue = ""
    _max_msgs = 0
    _future = None
    _jsi = None
    _pending_bytes_limit = 0  # 0: nats-py skips its per-subscription byte limit
    _wait_for_msgs_task = None
    _message_iterator = None
    _pending_next_msgs_calls = None

    def __init__(self, sid: int, subject: str, mux: SubjectMux) -> None:
        self._id = sid
        self._subject = subject
        self._mux = mux
        self._pending_queue = mux._inlet
        self._pending_size = 0
        self._received = 0

    async def _drain(self) -> None:
        """Called by `nc.drain()` for every entry of the table."""
        await self._mux.remove(self._subject)


def _has_internals(nc: NATS) -> bool:
    return (
        isinstance(getattr(nc, "_subs", None), dict)
        and isinstance(getattr(nc, "_sid", None), int)
        and callable(getattr(nc, "_send_command", None))
        and callable(getattr(nc, "_send_unsubscribe", None))
    )


class SubjectMux:
    """Subscribe to many subjects; every message lands in `queue` (one consumer drains it)."""

    def __init__(self, nc: NATS, queue_size: int = DEFAULT_QUEUE_SIZE, light: bool = True) -> None:
        self.nc = nc
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue(queue_size)
        self.light = light and _has_internals(nc)
        if light and not self.light:
            log.warning("nats_internals_missing", fallback="one nats-py subscription per subject")
        NATS_LIGHT_MODE.set(int(self.light))
        self.dropped = 0
        """Messages dropped because `queue` was full (also counted in DROPPED)."""
        self._inlet = _Inlet(self._put)
        self._sids: dict[str, int] = {}  # light mode: subject -> sid
        self._subs: dict[str, Subscription] = {}  # fallback mode
        self._next_flush: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._probe_subject: str | None = None
        self._probe: asyncio.Future[None] | None = None
        self._dropped_logged = 0
        self._drop_logged_at = float("-inf")

    async def start(self, timeout: float = PROBE_TIMEOUT) -> None:
        """Check the light path end to end; on failure fall back to ordinary subscriptions.

        In light mode: subscribe a fresh inbox subject through the light path, publish a
        probe to it on the same connection and wait up to `timeout` seconds for nats-py's
        reader to hand it to `_put`. When it does not arrive, or anything raises, log
        `nats_light_mode_failed` once and move every subject (any added already too) to
        ordinary nats-py subscriptions. Call it before use; it does nothing in fallback mode.
        """
        if not self.light:
            return
        self._take_messages_first()
        try:
            reason = await self._self_test(timeout)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
        if reason is None:
            return
        log.warning(
            "nats_light_mode_failed", reason=reason, fallback="one nats-py subscription per subject"
        )
        await self._fall_back()

    def _take_messages_first(self) -> None:
        """Have the connection hand messages of light interests straight to `_put`."""
        nc: Any = self.nc
        original = getattr(nc, "_process_msg", None)
        if not callable(original):
            log.warning("nats_fast_path_missing", fallback="nats-py builds each message")
            return
        subs: dict[int, object] = nc._subs
        stats: dict[str, int] = nc.stats
        put = self._put

        async def process_msg(
            sid: int, subject: bytes | str, reply: bytes, data: bytes, headers: bytes | None
        ) -> None:
            if type(subs.get(sid)) is not _Interest:
                await original(sid, subject, reply, data, headers)
                return
            stats["in_msgs"] += 1
            stats["in_bytes"] += len(data)
            name = subject.decode() if isinstance(subject, bytes) else subject
            put(Delivery(name, data, sequence_of(headers), traceparent_of(headers)))

        nc._process_msg = process_msg

    async def _self_test(self, timeout: float) -> str | None:
        """None when a probe makes it through the light path, else why not."""
        if getattr(self.nc, "options", {}).get("no_echo"):
            return "the connection has no_echo: the probe cannot come back"
        subject = self.nc.new_inbox()
        probe = asyncio.get_running_loop().create_future()
        self._probe_subject, self._probe = subject, probe
        try:
            async with asyncio.timeout(timeout):
                await self.add(subject)
                await self.nc.publish(subject, b"probe")
                await flush_queued(self.nc)
                await probe
        except TimeoutError:
            return f"the probe did not arrive within {timeout:g} s"
        finally:
            self._probe_subject = self._probe = None
            try:
                await self.remove(subject)
            except Exception as exc:
                log.warning("nats_probe_unsubscribe_failed", error=str(exc))
        return None

    async def _fall_back(self) -> None:
        """Move every subject from the light path to ordinary subscriptions."""
        # Switch first, with no await in between: from here every add and remove is ordinary.
        self.light = False
        NATS_LIGHT_MODE.set(0)
        light, self._sids = self._sids, {}
        nc: Any = self.nc
        for subject, sid in light.items():
            try:
                nc._subs.pop(sid, None)  # nats-py ignores messages for a sid it does not know
            except Exception as exc:
                log.warning("nats_light_unsubscribe_failed", subject=subject, error=str(exc))
        for subject, sid in light.items():
            try:
                if nc.is_connected:
                    await nc._send_unsubscribe(sid)
            except Exception as exc:
                log.warning("nats_light_unsubscribe_failed", subject=subject, error=str(exc))
        subjects = list(light)
        for subject in subjects:
            await self.add(subject, confirm=False)
        if subjects:
            await self._confirm()

    def __len__(self) -> int:
        return len(self._sids) + len(self._subs)

    def __contains__(self, subject: str) -> bool:
        return subject in self._sids or subject in self._subs

    async def add(self, subject: str, confirm: bool = True) -> None:
        """Start receiving `subject`; with `confirm`, return once the server has the interest."""
        if subject in self:
            return
        if self.light:
            nc: Any = self.nc
            nc._sid += 1
            sid: int = nc._sid
            nc._subs[sid] = _Interest(sid, subject, self)
            self._sids[subject] = sid
            await nc._send_command(prot_command.sub_cmd(subject, "", sid))
        else:
            self._subs[subject] = await self.nc.subscribe(subject, cb=self._enqueue)
        if confirm:
            await self._confirm()

    async def _confirm(self) -> None:
        """Wait for a PING/PONG sent after our SUB: the server then has the interest.

        Sign-ins arrive in bursts; callers waiting at the same time share one round trip
        (a flush already under way may predate their SUB, so they join the next one).
        """
        if self._next_flush is None:
            self._next_flush = asyncio.get_running_loop().create_future()
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush_rounds())
        await asyncio.shield(self._next_flush)

    async def _flush_rounds(self) -> None:
        while self._next_flush is not None:
            round_, self._next_flush = self._next_flush, None
            try:
                await flush_queued(self.nc)
            except Exception as exc:
                round_.set_exception(exc)
            else:
                round_.set_result(None)

    async def remove(self, subject: str) -> None:
        """Stop receiving `subject` (messages already queued are still delivered)."""
        if self.light:
            sid = self._sids.pop(subject, None)
            if sid is None:
                return
            nc: Any = self.nc
            nc._subs.pop(sid, None)
            if nc.is_connected:
                await nc._send_unsubscribe(sid)
        else:
            sub = self._subs.pop(subject, None)
            if sub is not None and self.nc.is_connected:
                await sub.unsubscribe()

    async def clear(self) -> None:
        for subject in [*self._sids, *self._subs]:
            await self.remove(subject)

    async def _enqueue(self, msg: Msg) -> None:
        """The callback of the ordinary subscriptions (fallback mode)."""
        self._put(msg)

    def _put(self, msg: Msg | Delivery) -> None:
        """Every message of both modes comes here: queued, or dropped and counted."""
        if isinstance(msg, Msg):
            msg = Delivery.of(msg)
        if msg.subject == self._probe_subject:
            if self._probe is not None and not self._probe.done():
                self._probe.set_result(None)
            return
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.dropped += 1
            DROPPED.labels("queue_full").inc()
            now = time.monotonic()
            if now - self._drop_logged_at >= DROP_LOG_INTERVAL:
                log.warning(
                    "device_event_dropped",
                    reason="queue full",
                    subject=msg.subject,
                    dropped=self.dropped - self._dropped_logged,
                    light=self.light,
                )
                self._drop_logged_at, self._dropped_logged = now, self.dropped
