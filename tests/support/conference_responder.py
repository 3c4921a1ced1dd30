"""A stand-in for the conference service on the bus: answers the app-backend requests
(parley.conference.query / command / callout, queue group conference) with fixed protos,
or a set error, and records every request it got, so a test sees what the gateway sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from nats.aio.client import Client as NATS

from parley.v1 import conference_pb2
from parley_protocol import subjects
from parley_protocol.errors import ParleyError
from parley_service.bus import Bus


@dataclass
class ConferenceResponder:
    nc: NATS
    info: conference_pb2.ConferenceInfo = field(default_factory=conference_pb2.ConferenceInfo)
    affected: int = 1
    call_id: str = "0b8a6f3e-7c55-4d7e-9d1c-2f0c5b9a1e42"
    # Raised instead of answering, when set.
    error: ParleyError | None = None
    # Every request taken, in order (ConferenceQuery, ConferenceCommand, ConferenceCallout).
    received: list[Any] = field(default_factory=list)

    async def start(self) -> None:
        self._bus = Bus(self.nc, "conference")
        queue = subjects.CONFERENCE_QUEUE
        self._bus.endpoint(
            subjects.CONFERENCE_QUERY, conference_pb2.ConferenceQuery, self._query, queue
        )
        self._bus.endpoint(
            subjects.CONFERENCE_COMMAND, conference_pb2.ConferenceCommand, self._command, queue
        )
        self._bus.endpoint(
            subjects.CONFERENCE_CALLOUT, conference_pb2.ConferenceCallout, self._callout, queue
        )
        await self._bus.serve()
        await self.nc.flush()

    async def stop(self) -> None:
        await self._bus.stop_serving()

    def _take(self, message: Message) -> None:
        self.received.append(message)
        if self.error is not None:
            raise self.error

    async def _query(self, req: conference_pb2.ConferenceQuery) -> conference_pb2.ConferenceInfo:
        self._take(req)
        reply = conference_pb2.ConferenceInfo()
        reply.CopyFrom(self.info)
        reply.conference_id = req.conference_id
        return reply

    async def _command(
        self, req: conference_pb2.ConferenceCommand
    ) -> conference_pb2.ConferenceCommandReply:
        self._take(req)
        return conference_pb2.ConferenceCommandReply(affected=self.affected)

    async def _callout(
        self, req: conference_pb2.ConferenceCallout
    ) -> conference_pb2.ConferenceCalloutReply:
        self._take(req)
        return conference_pb2.ConferenceCalloutReply(call_id=self.call_id)
