"""The rooms this replica holds: who is in each, their media in the mixer, and the
ConferenceChanged events each participant's device hears.

A room exists here from its first dial (placement named this replica) until its last
member leaves; then its placement key is released. A member is counted from the dial on
(so a room whose only participant is still connecting is not given up), and listed to the
others once it joined (its media is in the mixer).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from parley.v1 import conference_pb2
from parley_conference.mixer import Endpoint, Mixer
from parley_conference.placement import Placement
from parley_protocol import subjects
from parley_protocol.clock import Clock
from parley_service.devices import DeviceEvents
from parley_service.logs import get_logger

log = get_logger("parley.conference.rooms")

JOINED = conference_pb2.CONFERENCE_CHANGE_JOINED
LEFT = conference_pb2.CONFERENCE_CHANGE_LEFT
MUTED = conference_pb2.CONFERENCE_CHANGE_MUTED
UNMUTED = conference_pb2.CONFERENCE_CHANGE_UNMUTED


class Kickable(Protocol):
    """What a room needs of a member's leg: to remove it."""

    def remove(self) -> None: ...


@dataclass
class Member:
    call_id: str
    leg: Kickable
    # Who hears the room's events: a user's device session (a user's own call), all of a
    # user's devices (a callout: the device that answered is not known), or nobody (phone).
    user_id: str = ""
    session_id: str = ""
    number: str = ""
    muted: bool = False
    joined_at_ms: int = 0  # 0: not joined yet (connecting)

    def wire(self) -> conference_pb2.ConferenceParticipant:
        return conference_pb2.ConferenceParticipant(
            call_id=self.call_id,
            user_id=self.user_id,
            number=self.number,
            muted=self.muted,
            joined_at_ms=self.joined_at_ms,
        )


@dataclass
class Room:
    app: str
    conference_id: str
    revision: int  # of the placement naming this replica
    members: dict[str, Member] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return subjects.conference_key(self.app, self.conference_id)

    def joined(self) -> list[Member]:
        return [m for m in self.members.values() if m.joined_at_ms]


class Rooms:
    def __init__(
        self, mixer: Mixer, devices: DeviceEvents, placement: Placement, clock: Clock
    ) -> None:
        self._mixer = mixer
        self._devices = devices
        self._placement = placement
        self._clock = clock
        self._rooms: dict[str, Room] = {}

    # -- what the service reads ------------------------------------------------------------

    def get(self, app: str, conference_id: str) -> Room | None:
        return self._rooms.get(subjects.conference_key(app, conference_id))

    @property
    def rooms(self) -> int:
        return len(self._rooms)

    @property
    def members(self) -> int:
        return sum(len(r.members) for r in self._rooms.values())

    def info(self, room: Room) -> conference_pb2.ConferenceInfo:
        return conference_pb2.ConferenceInfo(
            conference_id=room.conference_id,
            participants=[m.wire() for m in room.joined()],
            now_ms=self._now_ms(),
        )

    # -- membership ------------------------------------------------------------------------

    def admit(self, app: str, conference_id: str, revision: int, member: Member) -> Room:
        """Count a member in (its leg is being set up); the room starts with its first."""
        room = self._rooms.get(subjects.conference_key(app, conference_id))
        if room is None:
            room = Room(app, conference_id, revision)
            self._rooms[room.name] = room
            log.info("room_opened", app=app, room=room.name)
        room.members[member.call_id] = member
        return room

    async def join(self, room: Room, member: Member, media: Endpoint) -> None:
        """The member's media connects to the mixer; everyone hears that it joined."""
        member.joined_at_ms = self._now_ms()
        self._mixer.join(room.name, member.call_id, media)
        await self._tell(room, JOINED, member)

    async def leave(self, room: Room, call_id: str) -> None:
        """The member is gone; the others hear it. The last one ends the room."""
        member = room.members.pop(call_id, None)
        if member is None:
            return
        if member.joined_at_ms:
            self._mixer.leave(room.name, call_id)
            await self._tell(room, LEFT, member)
        if not room.members and self._rooms.get(room.name) is room:
            del self._rooms[room.name]
            log.info("room_ended", app=room.app, room=room.name)
            try:
                await self._placement.release(room.app, room.conference_id, room.revision)
            except Exception as exc:  # the key then names a gone replica: taken over later
                log.warning("room_release_failed", room=room.name, error=str(exc))

    async def set_muted(self, room: Room, member: Member, muted: bool) -> bool:
        """Mute or unmute a member for the others; False when it already was."""
        if member.muted == muted:
            return False
        member.muted = muted
        if member.joined_at_ms:
            self._mixer.set_muted(room.name, member.call_id, muted)
            await self._tell(room, MUTED if muted else UNMUTED, member)
        return True

    def all_members(self) -> list[tuple[Room, Member]]:
        return [(room, m) for room in self._rooms.values() for m in room.members.values()]

    # -- events ----------------------------------------------------------------------------

    async def _tell(self, room: Room, change: int, member: Member) -> None:
        """ConferenceChanged to every joined member's device(s), the changed one included
        (it learns the list it is in)."""
        listed = [m.wire() for m in room.joined()]
        hearers = room.joined()
        if change == LEFT:
            hearers.append(member)
        sends = []
        for hearer in hearers:
            if not hearer.user_id:
                continue  # a phone hears no events
            event = conference_pb2.ConferenceChanged(
                call_id=hearer.call_id,
                conference_id=room.conference_id,
                change=change,  # type: ignore[arg-type]
                participant=member.wire(),
                participants=listed,
            )
            if hearer.session_id:
                sends.append(
                    self._devices.to_session(room.app, hearer.user_id, hearer.session_id, event)
                )
            else:
                sends.append(self._devices.to_user(room.app, hearer.user_id, event))
        for result in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(result, BaseException):
                log.warning("conference_event_failed", room=room.name, error=str(result))

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)
