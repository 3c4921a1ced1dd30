"""What a call is, as values: its state, direction, end cause and details, and the push
pairs of a callee who could not be reached (the guide's CallDetails, CallEndCause, PushPair)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from parley_client.errors import ParleyError
from parley_protocol.pb import calls as calls_pb


class CallState(enum.Enum):
    INITIATING = "initiating"
    PROGRESSING = "progressing"
    ESTABLISHED = "established"
    ENDED = "ended"


class CallKind(enum.Enum):
    """Whom a call is with: another user of the app, a phone number, a SIP address, or a
    conference room."""

    APP = "app"
    PHONE = "phone"
    SIP = "sip"
    CONFERENCE = "conference"


class CallDirection(enum.Enum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"


class CallEndCause(enum.Enum):
    """Why a call ended (the values are parley.v1.CallEndCause's)."""

    HUNG_UP = calls_pb.CALL_END_CAUSE_HUNG_UP
    DENIED = calls_pb.CALL_END_CAUSE_DENIED
    CANCELED = calls_pb.CALL_END_CAUSE_CANCELED
    NO_ANSWER = calls_pb.CALL_END_CAUSE_NO_ANSWER
    TIMEOUT = calls_pb.CALL_END_CAUSE_TIMEOUT
    FAILURE = calls_pb.CALL_END_CAUSE_FAILURE
    OTHER_DEVICE_ANSWERED = calls_pb.CALL_END_CAUSE_OTHER_DEVICE_ANSWERED
    INACTIVE = calls_pb.CALL_END_CAUSE_INACTIVE
    # The application removed this participant from its conference.
    REMOVED = calls_pb.CALL_END_CAUSE_REMOVED

    @classmethod
    def from_wire(cls, value: int) -> CallEndCause:
        """The cause a CallEnded names (an unknown or unset one is a FAILURE)."""
        try:
            return cls(value)
        except ValueError:
            return cls.FAILURE


@dataclass(frozen=True)
class PushPair:
    """The callee's push data and the payload to deliver (the guide's PushPair)."""

    push_data: bytes
    push_payload: bytes


@dataclass(frozen=True)
class CallDetails:
    """What is known of a call; times are seconds since the epoch (None: not yet)."""

    started_time: float
    progressed_time: float | None
    established_time: float | None
    ended_time: float | None
    duration: float  # seconds from established to ended (0 if it never was)
    end_cause: CallEndCause | None
    error: ParleyError | None
    is_video_offered: bool
