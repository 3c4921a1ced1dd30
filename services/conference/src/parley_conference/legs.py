"""A participant's leg: its call into a room, as the far side of a call of kind CONFERENCE.

- `ParticipantLeg`: a user called the room (`call_conference`): the leg answers the
  client's offer, tells the calls service it answered, and joins the room once the media
  connects.
- `CalloutLeg`: the application called a user into the room (REST callout): the leg offers,
  the user's devices ring with a conference call, and the leg joins when one answers.
- `PhoneLeg`: the application called a phone into the room: the leg calls the number
  through the sip service (a call whose both parties are remote legs) and joins when the
  phone answers.

Either stays in the room until the client hangs up, the application removes it (REMOVED),
its media fails or goes silent for `media_timeout` (the network dropped: FAILURE), or the
replica stops.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from nats.aio.client import Client as NATS

from parley.v1 import calls_pb2, common_pb2
from parley_conference.media import MediaLeg
from parley_conference.metrics import LEG_METRICS
from parley_conference.rooms import Member, Room, Rooms
from parley_legs.leg import Leg
from parley_legs.reports import LegReporter
from parley_protocol import subjects
from parley_protocol.errors import ErrorCode
from parley_service.logs import get_logger

log = get_logger("parley.conference.legs")

REMOVED = calls_pb2.CALL_END_CAUSE_REMOVED
# How often a joined participant's audio is checked for silence on the network.
WATCH_SECONDS = 0.5


@dataclass(frozen=True)
class Timeouts:
    """How long a participant's media may take to connect, how long it may send nothing,
    and how long a callout rings (seconds)."""

    connect: float
    media: float
    ring: float


class ParticipantLeg(Leg[MediaLeg]):
    kind = "participant"
    metrics = LEG_METRICS

    def __init__(
        self,
        nc: NATS,
        reporter: LegReporter,
        record: calls_pb2.CallRecord,
        rooms: Rooms,
        room: Room,
        member: Member,
        timeouts: Timeouts,
    ) -> None:
        super().__init__(nc, reporter, record)
        self._rooms = rooms
        self.room = room
        self.member = member
        self._timeouts = timeouts
        self.removed = asyncio.Event()

    def make_peer(self) -> MediaLeg:
        return MediaLeg(self._webrtc_state)

    def remove(self) -> None:
        """The application removes this participant (REST kick)."""
        self.removed.set()

    async def run(self) -> None:
        if not await self.report_answer():
            await self.end("caller_gone")
            return
        await self.talk()

    async def talk(self) -> None:
        """Join once the media connects; stay until the call ends one way or another."""
        await self.wait_any(
            self.webrtc.connected,
            self.caller_gone,
            self.media_gone,
            self.removed,
            timeout=self._timeouts.connect,
        )
        if not self.webrtc.connected.is_set():
            await self._ended_before_joining()
            return
        await self._rooms.join(self.room, self.member, self.webrtc)
        silent = asyncio.ensure_future(self._silence())
        try:
            await self.wait_any(self.caller_gone, self.media_gone, self.removed)
        finally:
            silent.cancel()
        await self._finish()

    async def _silence(self) -> None:
        """Sets media_gone once nothing arrived from the participant for the timeout."""
        loop = asyncio.get_running_loop()
        heard, heard_at = self.webrtc.inbox.received, loop.time()
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            if self.webrtc.inbox.received != heard:
                heard, heard_at = self.webrtc.inbox.received, loop.time()
            elif loop.time() - heard_at >= self._timeouts.media:
                log.info("participant_silent", call=self.call_id, seconds=self._timeouts.media)
                self.media_gone.set()
                return

    async def _ended_before_joining(self) -> None:
        if self.removed.is_set():
            await self.end("removed", cause=REMOVED)
        elif self.caller_gone.is_set():
            await self.end("caller_gone")
        else:
            await self.end(
                "media_failed",
                _error("the participant's media did not connect"),
                failure=True,
            )

    async def _finish(self) -> None:
        if self.removed.is_set():
            await self.end("removed", cause=REMOVED)
        elif self.caller_gone.is_set():
            await self.end("left")
        else:
            await self.end(
                "media_lost",
                _error(f"no audio from the participant for {self._timeouts.media:g} s"),
                failure=True,
            )

    async def teardown(self) -> None:
        await self._rooms.leave(self.room, self.call_id)


class CalloutLeg(ParticipantLeg):
    """The room calls a user: the leg is the caller of a call of kind CONFERENCE."""

    kind = "callout"
    offer_sdp = ""

    async def prepare(self) -> None:
        """Offer: the callee's devices get it with CallIncoming."""
        self.offer_sdp = await self.webrtc.offer()
        await self._reporter.incoming(
            self.app,
            calls_pb2.LegIncoming(
                call_id=self.call_id,
                callee_user_id=self.record.callee_user_id,
                from_number=self.room.conference_id,
                headers=dict(self.record.headers),
                offer_sdp=self.offer_sdp,
                kind=calls_pb2.CALL_KIND_CONFERENCE,
            ),
        )

    async def run(self) -> None:
        await self.wait_any(
            self.callee_answered, self.caller_gone, self.removed, timeout=self._timeouts.ring
        )
        if not self.callee_answered.is_set():
            if self.removed.is_set():
                await self.end("removed", cause=REMOVED)
            elif self.caller_gone.is_set():
                await self.end("declined")
            else:
                await self.end("unanswered")
            return
        self.mark_answered()
        await self.webrtc.accept_answer(self.callee_answer_sdp)
        await self.talk()


class PhoneLeg(CalloutLeg):
    """The room calls a phone or a SIP address in (REST callout): this leg starts a call of
    kind PHONE or SIP whose far side is the sip service's leg, and joins once it answers. The
    sip service reserves and settles the phone call's credit as for any phone call."""

    kind = "phone"
    session = subjects.LEG_CALLER_SESSION

    async def prepare(self) -> None:
        self.offer_sdp = await self.webrtc.offer()
        start = calls_pb2.StartCall(
            call_id=self.call_id, headers=dict(self.record.headers), offer_sdp=self.offer_sdp
        )
        if self.record.kind == calls_pb2.CALL_KIND_SIP:
            start.sip_uri = self.record.destination
        else:
            start.phone_number = self.record.destination
        await self._reporter.start(self.app, start)


def _error(reason: str) -> common_pb2.Error:
    return common_pb2.Error(code=ErrorCode.ERROR_CODE_UNAVAILABLE, reason=reason)
