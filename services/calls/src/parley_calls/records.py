"""What may happen to a call, as pure functions of its record (parley.v1.CallRecord).

Each transition takes the record as last read and returns the record to write, or None when
nothing changes (a retried request, a second ring); one that is not allowed raises a typed
error. The store writes the result with compare-and-set, so whatever replica computes it,
one transition wins and the others are computed again on the record it wrote.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from parley.v1 import calls_pb2
from parley_protocol import subjects
from parley_protocol.errors import ErrorCode, ParleyError

Record: TypeAlias = calls_pb2.CallRecord
Phase: TypeAlias = calls_pb2.CallPhase
Cause: TypeAlias = calls_pb2.CallEndCause

INITIATING = calls_pb2.CALL_PHASE_INITIATING
RINGING = calls_pb2.CALL_PHASE_RINGING
ANSWERED = calls_pb2.CALL_PHASE_ANSWERED
ENDED = calls_pb2.CALL_PHASE_ENDED

HUNG_UP = calls_pb2.CALL_END_CAUSE_HUNG_UP
DENIED = calls_pb2.CALL_END_CAUSE_DENIED
CANCELED = calls_pb2.CALL_END_CAUSE_CANCELED
NO_ANSWER = calls_pb2.CALL_END_CAUSE_NO_ANSWER
TIMEOUT = calls_pb2.CALL_END_CAUSE_TIMEOUT
FAILURE = calls_pb2.CALL_END_CAUSE_FAILURE
OTHER_DEVICE_ANSWERED = calls_pb2.CALL_END_CAUSE_OTHER_DEVICE_ANSWERED
INACTIVE = calls_pb2.CALL_END_CAUSE_INACTIVE
REMOVED = calls_pb2.CALL_END_CAUSE_REMOVED
UNSPECIFIED = calls_pb2.CALL_END_CAUSE_UNSPECIFIED

# The causes a device may give when it hangs up (what it detected itself).
DEVICE_CAUSES = frozenset({UNSPECIFIED, FAILURE, INACTIVE})

APP = calls_pb2.CALL_KIND_APP
PHONE = calls_pb2.CALL_KIND_PHONE
SIP = calls_pb2.CALL_KIND_SIP
CONFERENCE = calls_pb2.CALL_KIND_CONFERENCE
# The kinds whose callee is a remote leg held by another service, and which service.
LEG_SERVICES: dict[int, str] = {PHONE: "sip", SIP: "sip", CONFERENCE: "conference"}
# The kinds whose headers go on a SIP INVITE (x- headers only).
SIP_KINDS = frozenset({PHONE, SIP})
# The session ids a remote leg stands under (its user id is empty: no user has it): the
# far side of a call, or a leg that called in; a leg that called another remote leg.
LEG_SESSION = subjects.LEG_SESSION
LEG_CALLER_SESSION = subjects.LEG_CALLER_SESSION
LEG_SESSIONS = frozenset({LEG_SESSION, LEG_CALLER_SESSION})
# The causes a remote leg may give when it hangs up: none (before an answer: the far end
# declined, DENIED; after: HUNG_UP), FAILURE with the error (a SIP error, no media), or
# REMOVED (the application removed a conference participant).
LEG_CAUSES = frozenset({UNSPECIFIED, FAILURE, REMOVED})


def kind_name(kind: int) -> str:
    """`CALL_KIND_PHONE` -> `phone` (for logs and metric labels)."""
    try:
        name: str = calls_pb2.CallKind.Name(kind)
    except ValueError:
        return "unknown"
    return name.removeprefix("CALL_KIND_").lower()


def phase_name(phase: int) -> str:
    """`CALL_PHASE_RINGING` -> `ringing` (for logs and metric labels)."""
    try:
        name: str = Phase.Name(phase)
    except ValueError:
        return "unknown"
    return name.removeprefix("CALL_PHASE_").lower()


def cause_name(cause: int) -> str:
    """`CALL_END_CAUSE_NO_ANSWER` -> `no_answer` (for logs and metric labels)."""
    try:
        name: str = Cause.Name(cause)
    except ValueError:
        return "unknown"
    return name.removeprefix("CALL_END_CAUSE_").lower()


class Party(enum.Enum):
    CALLER = "caller"
    CALLEE = "callee"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts on a call: which party, from which device session."""

    party: Party
    session_id: str


@dataclass(frozen=True, slots=True)
class Target:
    """A device session an event goes to."""

    user_id: str
    session_id: str


def _denied(reason: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_PERMISSION_DENIED, reason, "call_id")


def _wrong_state(reason: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_WRONG_STATE, reason, "call_id")


def actor_of(record: Record, user_id: str, session_id: str) -> Actor:
    """The party `user_id` is in this call; PERMISSION_DENIED for anyone else."""
    # Both parties are remote legs (a conference calling a phone in): the session tells.
    both = record.caller_user_id == record.callee_user_id
    if user_id == record.caller_user_id and (not both or session_id == record.caller_session_id):
        return Actor(Party.CALLER, session_id)
    if user_id == record.callee_user_id:
        return Actor(Party.CALLEE, session_id)
    raise _denied("you are not a party of this call")


def _require_offered(record: Record, actor: Actor, verb: str) -> None:
    if actor.party is not Party.CALLEE:
        raise _denied(f"only the callee's devices {verb} a call")
    if actor.session_id not in record.offered_session_ids:
        raise _denied("this device was not offered the call")


def new_call(
    *,
    call_id: str,
    application_key: str,
    caller_user_id: str,
    caller_session_id: str,
    callee_user_id: str,
    video: bool,
    headers: dict[str, str],
    offer_sdp: str,
    offered_session_ids: Sequence[str],
    now_ms: int,
    setup_timeout_ms: int,
    ringing_timeout_ms: int,
    kind: calls_pb2.CallKind = APP,
    destination: str = "",
) -> Record:
    """A call just started. Offered to devices (or a remote leg), it must ring within the
    set-up timeout; offered to none (the push path), it rings until the ringing timeout."""
    offered = list(dict.fromkeys(offered_session_ids))
    return Record(
        kind=kind,
        destination=destination,
        call_id=call_id,
        application_key=application_key,
        caller_user_id=caller_user_id,
        caller_session_id=caller_session_id,
        callee_user_id=callee_user_id,
        video=video,
        headers=headers,
        offer_sdp=offer_sdp,
        phase=INITIATING,
        offered_session_ids=offered,
        started_at_ms=now_ms,
        deadline_ms=now_ms + (setup_timeout_ms if offered else ringing_timeout_ms),
        deadline_cause=TIMEOUT if offered else NO_ANSWER,
    )


def claim(record: Record, actor: Actor) -> Record | None:
    """A callee device woken by push asks for the call: while it waits for an answer it is
    offered to that device too (its deadline stays); otherwise nothing changes."""
    if actor.party is not Party.CALLEE:
        raise _denied("only the callee's devices claim a call")
    if record.phase not in (INITIATING, RINGING) or actor.session_id in record.offered_session_ids:
        return None
    changed = _copy(record)
    changed.offered_session_ids.append(actor.session_id)
    return changed


def ring(record: Record, actor: Actor, now_ms: int, ringing_timeout_ms: int) -> Record | None:
    """The first ring of an offered device moves INITIATING to RINGING (until the ringing
    timeout); any later ring changes nothing."""
    _require_offered(record, actor, "ring")
    if record.phase != INITIATING:
        return None
    changed = _copy(record)
    changed.phase = RINGING
    changed.deadline_ms = now_ms + ringing_timeout_ms
    changed.deadline_cause = NO_ANSWER
    return changed


def answer(record: Record, actor: Actor, now_ms: int) -> Record | None:
    """The first answer of an offered device wins; the same device answering again changes
    nothing, any other answer is WRONG_STATE."""
    _require_offered(record, actor, "answer")
    if record.phase == ANSWERED:
        if record.answered_session_id == actor.session_id:
            return None
        raise _wrong_state("the call was answered on another device")
    if record.phase == ENDED:
        raise _wrong_state("the call ended")
    changed = _copy(record)
    changed.phase = ANSWERED
    changed.answered_session_id = actor.session_id
    changed.answered_at_ms = now_ms
    changed.deadline_ms = 0
    changed.deadline_cause = UNSPECIFIED
    return changed


def hang_up(record: Record, actor: Actor, device_cause: Cause, now_ms: int) -> Record | None:
    """A party hangs up: the caller cancels, a callee device declines, either ends an
    answered call; a device that saw a failure or inactivity gives that cause instead.
    An ended call changes nothing."""
    if record.phase == ENDED:
        return None
    if actor.party is Party.CALLEE:
        if record.phase == ANSWERED and actor.session_id != record.answered_session_id:
            raise _wrong_state("the call was answered on another device")
        if actor.session_id not in record.offered_session_ids:
            raise _denied("this device was not offered the call")
    if device_cause in (FAILURE, INACTIVE, REMOVED):
        cause = device_cause
    elif record.phase == ANSWERED:
        cause = HUNG_UP
    else:
        cause = CANCELED if actor.party is Party.CALLER else DENIED
    return end(record, cause, now_ms)


def fail(record: Record, now_ms: int) -> Record | None:
    """A call that could not be set up (its remote leg was refused) ends as a FAILURE."""
    if record.phase == ENDED:
        return None
    return end(record, FAILURE, now_ms)


def expire(record: Record, now_ms: int) -> Record | None:
    """A call whose deadline passed ends with its deadline's cause."""
    if record.phase == ENDED or not record.deadline_ms or record.deadline_ms > now_ms:
        return None
    return end(record, record.deadline_cause or TIMEOUT, now_ms)


def abandon(record: Record, now_ms: int) -> Record | None:
    """An answered call one of whose parties is gone for good ends as a FAILURE."""
    if record.phase != ANSWERED:
        return None
    return end(record, FAILURE, now_ms)


def end(record: Record, cause: Cause, now_ms: int) -> Record:
    changed = _copy(record)
    changed.phase = ENDED
    changed.end_cause = cause
    changed.ended_at_ms = now_ms
    changed.deadline_ms = 0
    changed.deadline_cause = UNSPECIFIED
    return changed


def signal_target(record: Record, actor: Actor) -> Target:
    """Where a signal of `actor` goes: the other party of an answered call."""
    if record.phase == ENDED:
        raise _wrong_state("the call ended")
    if record.phase != ANSWERED:
        raise _wrong_state("the call is not answered yet")
    if actor.party is Party.CALLER and actor.session_id == record.caller_session_id:
        return Target(record.callee_user_id, record.answered_session_id)
    if actor.party is Party.CALLEE and actor.session_id == record.answered_session_id:
        return Target(record.caller_user_id, record.caller_session_id)
    raise _denied("this device is not in the call")


def offered_targets(record: Record, but: str = "") -> list[Target]:
    """Every callee device session the call was offered to (but one)."""
    return [Target(record.callee_user_id, s) for s in record.offered_session_ids if s != but]


def caller_name(record: Record) -> str:
    """Who the callee sees calling: the caller's user id, or the calling number of a call
    from a phone (its caller is the remote leg)."""
    return record.caller_user_id or record.destination


def is_leg(target: Target) -> bool:
    """The target is a call's remote leg, not a device session."""
    return not target.user_id and target.session_id in LEG_SESSIONS


def caller_target(record: Record) -> Target:
    return Target(record.caller_user_id, record.caller_session_id)


def ended_targets(before: Record, after: Record, by_session_id: str = "") -> list[Target]:
    """Who hears that a call ended: before an answer, the caller's session and every offered
    device; after it, both parties, but the one that hung up (it has its reply)."""
    if before.phase != ANSWERED:
        return [caller_target(before), *offered_targets(before)]
    parties = [caller_target(before), Target(before.callee_user_id, before.answered_session_id)]
    if after.end_cause == HUNG_UP:
        parties = [p for p in parties if p.session_id != by_session_id]
    return parties


def _copy(record: Record) -> Record:
    changed = Record()
    changed.CopyFrom(record)
    return changed
