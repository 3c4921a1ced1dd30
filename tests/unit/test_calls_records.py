"""The call record's transitions as pure functions: who may do what in which phase, what
each writes, and who hears that a call ended."""

from __future__ import annotations

import pytest

from parley.v1 import calls_pb2 as C
from parley_calls import records
from parley_calls.records import Actor, Party, Target
from parley_protocol.errors import ErrorCode, ParleyError

E = ErrorCode
NOW = 1_700_000_000_000
SETUP_MS, RINGING_MS = 30_000, 60_000

CALLER = Actor(Party.CALLER, "s-caller")
PHONE = Actor(Party.CALLEE, "s-phone")
TABLET = Actor(Party.CALLEE, "s-tablet")
LATE = Actor(Party.CALLEE, "s-late")


def _call(offered: tuple[str, ...] = ("s-phone", "s-tablet")) -> C.CallRecord:
    return records.new_call(
        call_id="c1",
        application_key="app",
        caller_user_id="ann",
        caller_session_id="s-caller",
        callee_user_id="bob",
        video=False,
        headers={"x-a": "1"},
        offer_sdp="v=0",
        offered_session_ids=offered,
        now_ms=NOW,
        setup_timeout_ms=SETUP_MS,
        ringing_timeout_ms=RINGING_MS,
    )


def _refused(code: int, call: object, *args: object) -> ParleyError:
    with pytest.raises(ParleyError) as info:
        call(*args)  # type: ignore[operator]
    assert info.value.code == code, info.value
    return info.value


def _answered(by: Actor = TABLET) -> C.CallRecord:
    answered = records.answer(_call(), by, NOW + 2000)
    assert answered is not None
    return answered


def test_a_new_call_must_ring_within_the_set_up_timeout_or_rings_out_with_no_device() -> None:
    call = _call(("s-phone", "s-tablet", "s-phone"))
    assert call.phase == C.CALL_PHASE_INITIATING
    assert list(call.offered_session_ids) == ["s-phone", "s-tablet"]
    assert (call.deadline_ms, call.deadline_cause) == (NOW + SETUP_MS, C.CALL_END_CAUSE_TIMEOUT)
    nobody = _call(())
    assert (nobody.deadline_ms, nobody.deadline_cause) == (
        NOW + RINGING_MS,
        C.CALL_END_CAUSE_NO_ANSWER,
    )
    assert call.started_at_ms == NOW and dict(call.headers) == {"x-a": "1"}


def test_the_parties_are_the_caller_and_the_callee_and_nobody_else() -> None:
    call = _call()
    assert records.actor_of(call, "ann", "any") == Actor(Party.CALLER, "any")
    assert records.actor_of(call, "bob", "s-phone") == PHONE
    err = _refused(E.ERROR_CODE_PERMISSION_DENIED, records.actor_of, call, "eve", "s")
    assert err.reason == "you are not a party of this call"


def test_the_first_ring_moves_to_ringing_once_and_only_offered_devices_ring() -> None:
    call = _call()
    rung = records.ring(call, PHONE, NOW + 1000, RINGING_MS)
    assert rung is not None and rung.phase == C.CALL_PHASE_RINGING
    assert (rung.deadline_ms, rung.deadline_cause) == (
        NOW + 1000 + RINGING_MS,
        C.CALL_END_CAUSE_NO_ANSWER,
    )
    assert call.phase == C.CALL_PHASE_INITIATING  # the input is left as it was
    assert records.ring(rung, TABLET, NOW + 1500, RINGING_MS) is None
    assert records.ring(_answered(), PHONE, NOW, RINGING_MS) is None
    _refused(E.ERROR_CODE_PERMISSION_DENIED, records.ring, call, CALLER, NOW, RINGING_MS)
    err = _refused(E.ERROR_CODE_PERMISSION_DENIED, records.ring, call, LATE, NOW, RINGING_MS)
    assert err.reason == "this device was not offered the call"


def test_the_first_answer_wins_and_a_retry_of_it_changes_nothing() -> None:
    answered = _answered(TABLET)
    assert answered.phase == C.CALL_PHASE_ANSWERED
    assert (answered.answered_session_id, answered.answered_at_ms) == ("s-tablet", NOW + 2000)
    assert (answered.deadline_ms, answered.deadline_cause) == (0, C.CALL_END_CAUSE_UNSPECIFIED)
    assert records.answer(answered, TABLET, NOW + 3000) is None
    err = _refused(E.ERROR_CODE_WRONG_STATE, records.answer, answered, PHONE, NOW)
    assert err.reason == "the call was answered on another device"
    ended = records.end(_call(), C.CALL_END_CAUSE_CANCELED, NOW)
    err = _refused(E.ERROR_CODE_WRONG_STATE, records.answer, ended, PHONE, NOW)
    assert err.reason == "the call ended"
    _refused(E.ERROR_CODE_PERMISSION_DENIED, records.answer, _call(), LATE, NOW)
    _refused(E.ERROR_CODE_PERMISSION_DENIED, records.answer, _call(), CALLER, NOW)


@pytest.mark.parametrize(
    ("answered", "actor", "device_cause", "cause"),
    [
        (False, CALLER, C.CALL_END_CAUSE_UNSPECIFIED, C.CALL_END_CAUSE_CANCELED),
        (
            False,
            Actor(Party.CALLER, "other"),
            C.CALL_END_CAUSE_UNSPECIFIED,
            C.CALL_END_CAUSE_CANCELED,
        ),
        (False, PHONE, C.CALL_END_CAUSE_UNSPECIFIED, C.CALL_END_CAUSE_DENIED),
        (True, CALLER, C.CALL_END_CAUSE_UNSPECIFIED, C.CALL_END_CAUSE_HUNG_UP),
        (True, TABLET, C.CALL_END_CAUSE_UNSPECIFIED, C.CALL_END_CAUSE_HUNG_UP),
        (True, TABLET, C.CALL_END_CAUSE_FAILURE, C.CALL_END_CAUSE_FAILURE),
        (False, CALLER, C.CALL_END_CAUSE_INACTIVE, C.CALL_END_CAUSE_INACTIVE),
    ],
)
def test_a_hang_up_ends_with_the_cause_of_who_and_when(
    answered: bool, actor: Actor, device_cause: C.CallEndCause, cause: C.CallEndCause
) -> None:
    call = _answered() if answered else _call()
    ended = records.hang_up(call, actor, device_cause, NOW + 5000)
    assert ended is not None and ended.phase == C.CALL_PHASE_ENDED
    assert (ended.end_cause, ended.ended_at_ms, ended.deadline_ms) == (cause, NOW + 5000, 0)
    assert records.hang_up(ended, actor, device_cause, NOW + 6000) is None  # idempotent


def test_only_devices_in_the_call_hang_it_up() -> None:
    err = _refused(
        E.ERROR_CODE_WRONG_STATE,
        records.hang_up,
        _answered(TABLET),
        PHONE,
        C.CALL_END_CAUSE_UNSPECIFIED,
        NOW,
    )
    assert err.reason == "the call was answered on another device"
    _refused(
        E.ERROR_CODE_PERMISSION_DENIED,
        records.hang_up,
        _call(),
        LATE,
        C.CALL_END_CAUSE_UNSPECIFIED,
        NOW,
    )


def test_a_passed_deadline_ends_with_its_cause_and_a_lost_party_fails_an_answered_call() -> None:
    call = _call()
    assert records.expire(call, NOW + SETUP_MS - 1) is None
    expired = records.expire(call, NOW + SETUP_MS)
    assert expired is not None and expired.end_cause == C.CALL_END_CAUSE_TIMEOUT
    rung = records.ring(call, PHONE, NOW, RINGING_MS)
    assert rung is not None
    rang_out = records.expire(rung, NOW + RINGING_MS)
    assert rang_out is not None and rang_out.end_cause == C.CALL_END_CAUSE_NO_ANSWER
    assert records.expire(_answered(), NOW + 10**9) is None  # no deadline once answered
    assert records.expire(expired, NOW + 10**9) is None
    assert records.abandon(call, NOW) is None
    abandoned = records.abandon(_answered(), NOW)
    assert abandoned is not None and abandoned.end_cause == C.CALL_END_CAUSE_FAILURE


def test_signals_go_to_the_other_party_of_an_answered_call() -> None:
    answered = _answered(TABLET)
    assert records.signal_target(answered, CALLER) == Target("bob", "s-tablet")
    assert records.signal_target(answered, TABLET) == Target("ann", "s-caller")
    err = _refused(E.ERROR_CODE_PERMISSION_DENIED, records.signal_target, answered, PHONE)
    assert err.reason == "this device is not in the call"
    _refused(
        E.ERROR_CODE_PERMISSION_DENIED,
        records.signal_target,
        answered,
        Actor(Party.CALLER, "other"),
    )
    err = _refused(E.ERROR_CODE_WRONG_STATE, records.signal_target, _call(), CALLER)
    assert err.reason == "the call is not answered yet"
    ended = records.end(answered, C.CALL_END_CAUSE_HUNG_UP, NOW)
    assert _refused(E.ERROR_CODE_WRONG_STATE, records.signal_target, ended, CALLER).reason == (
        "the call ended"
    )


def test_who_hears_that_a_call_ended() -> None:
    caller, phone, tablet = (
        Target("ann", "s-caller"),
        Target("bob", "s-phone"),
        Target("bob", "s-tablet"),
    )
    call = _call()
    canceled = records.end(call, C.CALL_END_CAUSE_CANCELED, NOW)
    assert records.ended_targets(call, canceled, "s-caller") == [caller, phone, tablet]
    answered = _answered(TABLET)
    hung_up = records.end(answered, C.CALL_END_CAUSE_HUNG_UP, NOW)
    assert records.ended_targets(answered, hung_up, "s-caller") == [tablet]
    assert records.ended_targets(answered, hung_up, "s-tablet") == [caller]
    failed = records.end(answered, C.CALL_END_CAUSE_FAILURE, NOW)
    assert records.ended_targets(answered, failed, "s-tablet") == [caller, tablet]
    assert records.offered_targets(answered, but="s-tablet") == [phone]


def test_phase_and_cause_names_are_bounded_labels() -> None:
    assert records.phase_name(C.CALL_PHASE_RINGING) == "ringing"
    assert records.cause_name(C.CALL_END_CAUSE_NO_ANSWER) == "no_answer"
    assert records.cause_name(999) == "unknown"
    assert records.phase_name(999) == "unknown"
