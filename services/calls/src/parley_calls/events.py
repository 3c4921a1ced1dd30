"""Call events to the parties' device sessions, and the one way a call's end is told.

Events are sent after the change they tell of was written (only by the writer that won),
each to one device session, through the resume window: a device that reconnects within it
still gets them. A failed send is logged and counted; the call's state stands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import nats.errors
from google.protobuf.message import Message
from nats.aio.client import Client as NATS

from parley.v1 import calls_pb2, common_pb2
from parley_calls import records
from parley_calls.metrics import CALLS_ENDED, EVENTS_FAILED
from parley_calls.records import Target
from parley_protocol import bodies, subjects
from parley_protocol.errors import ParleyError
from parley_service import tracing
from parley_service.app_label import app_label
from parley_service.devices import DeviceEvents
from parley_service.logs import get_logger

log = get_logger("parley.calls.events")


class CallEvents:
    def __init__(self, devices: DeviceEvents, nc: NATS) -> None:
        self._devices = devices
        self._nc = nc

    async def send(self, application_key: str, targets: Sequence[Target], event: Message) -> None:
        """Send `event` to each target session at once (to a remote leg: on its subject)."""
        results = await asyncio.gather(
            *(
                self._to_leg(application_key, event, t.session_id)
                if records.is_leg(t)
                else self._devices.to_session(application_key, t.user_id, t.session_id, event)
                for t in targets
            ),
            return_exceptions=True,
        )
        for target, result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, (ParleyError, nats.errors.Error, OSError, TimeoutError)):
                    raise result
                EVENTS_FAILED.inc()
                log.warning(
                    "call_event_failed",
                    body=bodies.body_of(event),
                    session=target.session_id,
                    error=str(result),
                )

    async def _to_leg(self, application_key: str, event: Message, session_id: str) -> None:
        """A remote leg hears the call's end and signals, and, when it called in, that a
        device rings and its answer; nothing else is for it."""
        leg_event = calls_pb2.LegEvent(application_key=application_key)
        if isinstance(event, calls_pb2.CallEnded):
            leg_event.call_ended.CopyFrom(event)
        elif isinstance(event, calls_pb2.CallSignalReceived):
            leg_event.call_signal_received.CopyFrom(event)
        elif isinstance(event, calls_pb2.CallProgressing):
            leg_event.call_progressing.CopyFrom(event)
        elif isinstance(event, calls_pb2.CallAnswered):
            leg_event.call_answered.CopyFrom(event)
        else:
            return
        call_id = event.call_id
        await self._nc.publish(
            subjects.call_leg(application_key, call_id, session_id),
            leg_event.SerializeToString(),
            headers=tracing.inject({}) or None,  # the leg hears it in the call's trace
        )

    async def ended(
        self,
        before: calls_pb2.CallRecord,
        after: calls_pb2.CallRecord,
        by_session_id: str = "",
        error: common_pb2.Error | None = None,
    ) -> None:
        """Tell who must hear it that a call ended (the writer of the end calls this once)."""
        cause = records.cause_name(after.end_cause)
        CALLS_ENDED.labels(cause, app_label(after.application_key)).inc()
        log.info(
            "call_ended",
            app=after.application_key,
            call=after.call_id,
            cause=cause,
            was=records.phase_name(before.phase),
            error=error.reason if error is not None else None,
        )
        event = calls_pb2.CallEnded(
            call_id=after.call_id, cause=after.end_cause, ended_at_ms=after.ended_at_ms
        )
        if error is not None:
            event.error.CopyFrom(error)
        await self.send(
            after.application_key, records.ended_targets(before, after, by_session_id), event
        )
