"""The resume window: every device event kept for a while, numbered, readable by any gateway.

The stream EVENTS takes every publish on `parley.dev.>` (services publish device events
there and wait for its acknowledgement), keeps it `event_window_seconds` (plus a margin
for acks still on their way) and at most `event_window_max_events` per subject, and
republishes each on `parley.ev.>` with its stream sequence: that sequence is the event's
number, and gateways subscribe to the republished copies. A device that reconnects, to
this gateway or another, after its old gateway crashed or its network changed, names the
last event it handled; `missed()` reads what came after it for that device's session.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.js.api import DiscardPolicy, RePublish, StorageType, StreamConfig

from parley.v1 import client_pb2, routing_pb2
from parley_gateway.metrics import WINDOW_BYTES, WINDOW_EVENTS
from parley_protocol import bodies, framing, subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import tasks
from parley_service.assets import JetStreamAssets, Stream
from parley_service.direct_get import direct_get
from parley_service.logs import get_logger

log = get_logger("parley.gateway.window")

# Kept beyond the window: the last ack a client sent can be a heartbeat old, and a crashed
# gateway's resume records were written up to a third of their TTL before the crash.
AGE_MARGIN_SECONDS = 60.0
BATCH = 256
READ_TIMEOUT_SECONDS = 2.0
OCCUPANCY_SECONDS = 10.0
# A replay reads at most this many of the user's events (all of its devices) past the ack.
SCAN_FACTOR = 8


@dataclass(frozen=True)
class Missed:
    """What a resume replays: the events in order, or `overflowed` when more were missed
    than the window keeps for a device."""

    events: list[client_pb2.Envelope]
    overflowed: bool


class EventWindow:
    def __init__(
        self,
        nc: NATS,
        window_seconds: float,
        max_events: int,
        file: bool,
        replicas: int,
    ) -> None:
        self._nc = nc
        self.enabled = window_seconds > 0
        self.window_seconds = window_seconds
        self.max_events = max_events
        self._file = file
        self._replicas = replicas
        self._task: asyncio.Task[None] | None = None

    def stream_config(self) -> StreamConfig:
        return StreamConfig(
            name=subjects.EVENTS_STREAM,
            description="Parley resume window: device events, numbered, kept for reconnects",
            subjects=[subjects.DEVICE_EVENTS],
            storage=StorageType.FILE if self._file else StorageType.MEMORY,
            num_replicas=self._replicas,
            max_age=self.window_seconds + AGE_MARGIN_SECONDS,
            max_msgs_per_subject=self.max_events,
            discard=DiscardPolicy.OLD,
            allow_direct=True,
            duplicate_window=min(120.0, self.window_seconds),
            republish=RePublish(
                src=subjects.DEVICE_EVENTS,
                dest=subjects.LIVE_EVENTS_PREFIX + ">",
            ),
        )

    async def open(self, assets: JetStreamAssets) -> None:
        if not self.enabled:
            return
        await assets.add(Stream(self.stream_config()))
        self._task = asyncio.create_task(self._occupancy_loop(), name="gateway-window")

    async def close(self) -> None:
        await tasks.stop(self._task)
        self._task = None

    async def missed(
        self, application_key: str, user_id: str, session_id: str, after: int
    ) -> Missed:
        """The events of `session_id` (its own, and those to all of the user's devices that
        do not leave it out) numbered above `after`, in order.

        The window keeps at most `max_events` per subject, dropping the oldest: when as many
        are kept past `after` on one of the session's two subjects, some may be gone, and
        the replay would not be whole (`overflowed`).
        """
        found: list[client_pb2.Envelope] = []
        kept = {subjects.ALL_DEVICES: 0, session_id: 0}
        scanned = 0
        seq = after + 1
        limit = self.max_events * SCAN_FACTOR
        subject = subjects.user_events(application_key, user_id)
        while True:
            batch, pending = await self._read(subject, seq)
            for number, target, data in batch:
                scanned += 1
                seq = number + 1
                if target in kept:
                    kept[target] += 1
                    if kept[target] >= self.max_events:
                        return Missed(found, overflowed=True)
                envelope = _event_for(session_id, target, data)
                if envelope is None:
                    continue
                envelope.event = number
                found.append(envelope)
            if not pending or not batch:
                return Missed(found, overflowed=False)
            if scanned >= limit:
                return Missed(found, overflowed=True)

    async def _read(self, subject: str, seq: int) -> tuple[list[tuple[int, str, bytes]], int]:
        """One batched direct get from `seq`: [(number, target, data)], and how many more."""
        request = {"seq": seq, "next_by_subj": subject, "batch": BATCH}
        try:
            stored, pending = await direct_get(
                self._nc, subjects.EVENTS_STREAM, request, "the event window", READ_TIMEOUT_SECONDS
            )
        except ParleyError as exc:
            raise ParleyError(ErrorCode.ERROR_CODE_UNAVAILABLE, exc.reason) from exc
        return [(m.sequence, m.subject.rpartition(".")[2], m.data) for m in stored], pending

    async def _occupancy_loop(self) -> None:
        js = self._nc.jetstream()
        while True:
            try:
                info = await js.stream_info(subjects.EVENTS_STREAM)
                WINDOW_EVENTS.set(info.state.messages)
                WINDOW_BYTES.set(info.state.bytes)
            except Exception as exc:  # the assets check makes it again
                log.debug("window_occupancy_unknown", error=str(exc))
            await asyncio.sleep(OCCUPANCY_SECONDS)


def _event_for(session_id: str, target: str, data: bytes) -> client_pb2.Envelope | None:
    """The envelope of a stored DeviceEvent if it is for `session_id`."""
    event = routing_pb2.DeviceEvent()
    try:
        event.ParseFromString(data)
    except DecodeError:
        return None
    if target == subjects.ALL_DEVICES:
        if event.except_session_id == session_id:
            return None
    elif target != session_id:
        return None
    if len(event.envelope) > framing.MAX_EVENT_BYTES:
        return None
    envelope = client_pb2.Envelope()
    try:
        envelope.ParseFromString(event.envelope)
    except DecodeError:
        return None
    if framing.body_name(envelope) not in bodies.EVENT_BODIES:
        return None
    envelope.reply_to = 0
    return envelope
