"""What a conference call's device hears of its room: who is in it, and each change
(ConferenceChanged events of the conference service), as plain values."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from parley_protocol.pb import conference as conference_pb


class ParticipantChange(enum.Enum):
    JOINED = conference_pb.CONFERENCE_CHANGE_JOINED
    LEFT = conference_pb.CONFERENCE_CHANGE_LEFT
    MUTED = conference_pb.CONFERENCE_CHANGE_MUTED
    UNMUTED = conference_pb.CONFERENCE_CHANGE_UNMUTED


@dataclass(frozen=True)
class Participant:
    """One participant of a conference: a user (`user_id`) or a phone (`number`)."""

    call_id: str
    user_id: str
    number: str
    muted: bool
    joined_at: float  # seconds since the epoch

    @classmethod
    def from_wire(cls, p: conference_pb.ConferenceParticipant) -> Participant:
        return cls(p.call_id, p.user_id, p.number, p.muted, p.joined_at_ms / 1000)


@dataclass(frozen=True)
class ConferenceEvent:
    """A change in the room: `participant` joined, left, or was muted or unmuted;
    `participants` is the room after it (this device's own entry included)."""

    conference_id: str
    change: ParticipantChange
    participant: Participant
    participants: tuple[Participant, ...]

    @classmethod
    def from_wire(cls, event: conference_pb.ConferenceChanged) -> ConferenceEvent | None:
        """None for a change this client does not know (a newer service's)."""
        try:
            change = ParticipantChange(event.change)
        except ValueError:
            return None
        return cls(
            event.conference_id,
            change,
            Participant.from_wire(event.participant),
            tuple(Participant.from_wire(p) for p in event.participants),
        )
