"""The conference service's requests: joins (the calls service's DialRequest for a call of
kind CONFERENCE), and the application's queries, commands and callouts (REST on the
gateway).

Each arrives at any replica (queue group conference). The room's placement says which
replica holds it: that one acts, and any other passes the request on to it (its own
subject, parley.conference.replica.<id>.<verb>); a replica never passes on a request that
was passed to it (the placement changed meanwhile: UNAVAILABLE, and the caller retries).
Joins and callouts place a room that has none; queries and commands of a room nobody is in
are NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from google.protobuf.message import Message
from nats.aio.client import Client as NATS

from parley.v1 import calls_pb2, conference_pb2
from parley_conference.legs import CalloutLeg, ParticipantLeg, PhoneLeg, Timeouts
from parley_conference.metrics import JOINS_REFUSED
from parley_conference.placement import Placed, Placement
from parley_conference.rooms import Member, Room, Rooms
from parley_conference.settings import ConferenceSettings
from parley_legs.holder import LegHolder
from parley_legs.reports import LegReporter
from parley_protocol import subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.validation import (
    validate_application_key,
    validate_call_id,
    validate_conference_id,
    validate_headers,
    validate_phone_number,
    validate_sip_headers,
    validate_sip_identity,
    validate_user_id,
)
from parley_service.bus import Bus
from parley_service.logs import get_logger

log = get_logger("parley.conference.service")

R = TypeVar("R", bound=Message)
FORWARD_TIMEOUT_SECONDS = 4.0
KICK = conference_pb2.CONFERENCE_COMMAND_KIND_KICK
MUTE = conference_pb2.CONFERENCE_COMMAND_KIND_MUTE
UNMUTE = conference_pb2.CONFERENCE_COMMAND_KIND_UNMUTE


class ConferenceService:
    def __init__(
        self,
        settings: ConferenceSettings,
        nc: NATS,
        bus: Bus,
        placement: Placement,
        rooms: Rooms,
        reporter: LegReporter,
    ) -> None:
        self._settings = settings
        self._nc = nc
        self._bus = bus
        self._placement = placement
        self._rooms = rooms
        self._reporter = reporter
        self.me = placement.replica_id
        self.held: LegHolder[ParticipantLeg] = LegHolder()
        self._timeouts = Timeouts(
            connect=settings.conference_connect_seconds,
            media=settings.conference_media_timeout_seconds,
            ring=settings.conference_callout_ring_seconds,
        )
        self.draining = False
        self._load_task: asyncio.Task[None] | None = None

    def declare(self, bus: Bus) -> None:
        """Requests to any replica (queue group), and those passed to this one."""
        queue = subjects.CONFERENCE_QUEUE
        for verb, subject, request_type, handler in (
            ("dial", subjects.call_dial(queue), calls_pb2.DialRequest, self.dial),
            ("query", subjects.CONFERENCE_QUERY, conference_pb2.ConferenceQuery, self.query),
            (
                "command",
                subjects.CONFERENCE_COMMAND,
                conference_pb2.ConferenceCommand,
                self.command,
            ),
            (
                "callout",
                subjects.CONFERENCE_CALLOUT,
                conference_pb2.ConferenceCallout,
                self.callout,
            ),
        ):
            bus.endpoint(subject, request_type, _first_hop(handler, True), queue)
            bus.endpoint(
                subjects.conference_replica(self.me, verb),
                request_type,
                _first_hop(handler, False),
                "",
            )

    # -- joins ---------------------------------------------------------------------------

    async def dial(self, request: calls_pb2.DialRequest, may_pass: bool) -> calls_pb2.DialReply:
        record = request.call
        if record.kind != calls_pb2.CALL_KIND_CONFERENCE:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                "the conference service takes conference calls only",
                "kind",
            )
        app = validate_application_key(record.application_key)
        conference_id = validate_conference_id(record.destination)

        async def here(placed: Placed) -> calls_pb2.DialReply:
            key = subjects.call_key(app, record.call_id)
            if key not in self.held:
                self._check_room_for_one(app, conference_id)
                member = Member(
                    record.call_id,
                    _NoLeg(),
                    user_id=record.caller_user_id,
                    session_id=record.caller_session_id,
                )
                room = self._rooms.admit(app, conference_id, placed.revision, member)
                leg = self._participant(ParticipantLeg, record, room, member)
                await self.held.hold(key, leg)
                log.info("participant_placed", app=app, call=record.call_id, room=room.name)
            return calls_pb2.DialReply(replica_id=self.me)

        return await self._at_room(
            app, conference_id, "dial", request, calls_pb2.DialReply, here, True, may_pass
        )

    async def callout(
        self, request: conference_pb2.ConferenceCallout, may_pass: bool
    ) -> conference_pb2.ConferenceCalloutReply:
        app = validate_application_key(request.application_key)
        conference_id = validate_conference_id(request.conference_id)
        headers = validate_headers(dict(request.headers))
        which = request.WhichOneof("destination")
        kind = calls_pb2.CALL_KIND_CONFERENCE
        if which == "phone_number":
            number = validate_phone_number(request.phone_number, "phone_number")
            headers = validate_sip_headers(headers)
            user_id, kind = "", calls_pb2.CALL_KIND_PHONE
        elif which == "sip_uri":
            number = validate_sip_identity(request.sip_uri, "sip_uri")
            headers = validate_sip_headers(headers)
            user_id, kind = "", calls_pb2.CALL_KIND_SIP
        elif which == "user_id":
            user_id = validate_user_id(request.user_id, "user_id")
            number = ""
        else:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                "a callout names a user_id, a phone_number or a sip_uri",
                "destination",
            )

        async def here(placed: Placed) -> conference_pb2.ConferenceCalloutReply:
            self._check_room_for_one(app, conference_id)
            record = calls_pb2.CallRecord(
                call_id=str(uuid.uuid4()),
                application_key=app,
                callee_user_id=user_id,
                kind=kind,
                destination=number or conference_id,
                headers=headers,
            )
            member = Member(record.call_id, _NoLeg(), user_id=user_id, number=number)
            room = self._rooms.admit(app, conference_id, placed.revision, member)
            leg = self._participant(PhoneLeg if number else CalloutLeg, record, room, member)
            await self.held.hold(subjects.call_key(app, record.call_id), leg)
            log.info("callout_placed", app=app, call=record.call_id, room=room.name)
            return conference_pb2.ConferenceCalloutReply(call_id=record.call_id)

        return await self._at_room(
            app,
            conference_id,
            "callout",
            request,
            conference_pb2.ConferenceCalloutReply,
            here,
            True,
            may_pass,
        )

    def _participant(
        self,
        leg_type: type[ParticipantLeg],
        record: calls_pb2.CallRecord,
        room: Room,
        member: Member,
    ) -> ParticipantLeg:
        leg = leg_type(self._nc, self._reporter, record, self._rooms, room, member, self._timeouts)
        member.leg = leg
        return leg

    def _check_room_for_one(self, app: str, conference_id: str) -> None:
        if len(self.held) >= self._settings.conference_max_participants:
            JOINS_REFUSED.labels("full").inc()
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNAVAILABLE,
                "this conference replica holds its most participants "
                f"({self._settings.conference_max_participants})",
            )
        if self.draining and self._rooms.get(app, conference_id) is None:
            JOINS_REFUSED.labels("draining").inc()
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNAVAILABLE, "this conference replica is stopping; retry"
            )

    # -- the application's requests --------------------------------------------------------

    async def query(
        self, request: conference_pb2.ConferenceQuery, may_pass: bool
    ) -> conference_pb2.ConferenceInfo:
        app = validate_application_key(request.application_key)
        conference_id = validate_conference_id(request.conference_id)

        async def here(placed: Placed) -> conference_pb2.ConferenceInfo:
            return self._rooms.info(self._room(app, conference_id))

        return await self._at_room(
            app,
            conference_id,
            "query",
            request,
            conference_pb2.ConferenceInfo,
            here,
            False,
            may_pass,
        )

    async def command(
        self, request: conference_pb2.ConferenceCommand, may_pass: bool
    ) -> conference_pb2.ConferenceCommandReply:
        app = validate_application_key(request.application_key)
        conference_id = validate_conference_id(request.conference_id)
        if request.command not in (KICK, MUTE, UNMUTE):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                "the command is one of mute, unmute and kick",
                "command",
            )
        call_id = validate_call_id(request.call_id) if request.call_id else ""

        async def here(placed: Placed) -> conference_pb2.ConferenceCommandReply:
            room = self._room(app, conference_id)
            members = list(room.members.values())
            if call_id:
                members = [m for m in members if m.call_id == call_id]
                if not members:
                    raise ParleyError(
                        ErrorCode.ERROR_CODE_NOT_FOUND,
                        f"no participant {call_id} in conference {conference_id!r}",
                        "call_id",
                    )
            affected = 0
            for member in members:
                if request.command == KICK:
                    member.leg.remove()
                    affected += 1
                elif await self._rooms.set_muted(room, member, request.command == MUTE):
                    affected += 1
            log.info(
                "conference_command",
                app=app,
                room=room.name,
                command=conference_pb2.ConferenceCommandKind.Name(request.command),
                affected=affected,
            )
            return conference_pb2.ConferenceCommandReply(affected=affected)

        return await self._at_room(
            app,
            conference_id,
            "command",
            request,
            conference_pb2.ConferenceCommandReply,
            here,
            False,
            may_pass,
        )

    def _room(self, app: str, conference_id: str) -> Room:
        room = self._rooms.get(app, conference_id)
        if room is None or not room.members:
            raise _no_room(conference_id)
        return room

    # -- placement -----------------------------------------------------------------------

    async def _at_room(
        self,
        app: str,
        conference_id: str,
        verb: str,
        request: Message,
        reply_type: type[R],
        here: Callable[[Placed], Awaitable[R]],
        place: bool,
        may_pass: bool,
    ) -> R:
        """Act here when this replica holds the room, else pass the request to the one
        that does (once)."""
        if place:
            placed: Placed | None = await self._placement.place(app, conference_id)
        else:
            placed = await self._placement.owner(app, conference_id)
        if placed is None:
            raise _no_room(conference_id)
        if placed.replica_id == self.me:
            return await here(placed)
        if not may_pass:
            JOINS_REFUSED.labels("elsewhere").inc()
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNAVAILABLE,
                "the conference moved to another replica meanwhile; retry",
            )
        return await self._bus.request(
            subjects.conference_replica(placed.replica_id, verb),
            request,
            reply_type,
            FORWARD_TIMEOUT_SECONDS,
        )

    # -- load, drain and stop ------------------------------------------------------------

    async def start(self) -> None:
        await self._write_load()
        self._load_task = asyncio.get_running_loop().create_task(
            self._loads(), name="conference load"
        )

    async def _loads(self) -> None:
        while True:
            await asyncio.sleep(self._settings.conference_load_seconds)
            try:
                await self._write_load()
            except Exception as exc:  # NATS away for a moment: the next write catches up
                log.warning("load_write_failed", error=str(exc))

    async def _write_load(self) -> None:
        await self._placement.write_load(self._rooms.rooms, self._rooms.members, self.draining)

    async def drain(self) -> None:
        """Take no new rooms (the load says so); let the rooms here go on for the drain
        time, then end what is left."""
        self.draining = True
        with contextlib.suppress(Exception):
            await self._write_load()
        if self.held:
            log.info("conference_draining", participants=len(self.held))
        await self.held.wait_all(self._settings.conference_drain_seconds)
        await self.stop()

    async def stop(self) -> None:
        self.draining = True
        await self.held.end_all("drained")
        if self._load_task is not None:
            self._load_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._load_task
        await self._placement.forget_load()


class _NoLeg:
    """A member's leg until it is made (never removed before then)."""

    def remove(self) -> None:
        return None


def _no_room(conference_id: str) -> ParleyError:
    return ParleyError(
        ErrorCode.ERROR_CODE_NOT_FOUND,
        f"no conference {conference_id!r} in this application (nobody is in it)",
        "conference_id",
    )


def _first_hop(
    handler: Callable[[Any, bool], Awaitable[Message]], may_pass: bool
) -> Callable[[Any], Awaitable[Message]]:
    """The handler with `may_pass` bound: True on the queue group's subject (a request may
    be passed on to the room's replica), False on this replica's own."""

    async def handle(request: Any) -> Message:
        return await handler(request, may_pass)

    return handle
