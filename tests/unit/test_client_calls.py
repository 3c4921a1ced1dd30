"""Calls through the fake gateway and its calls service: the state machine and listeners of
both parties for every way a call ends, pushes, validation, waits, terminate, reconnects,
in-call signals, and signalling-only mode (most tests: no media stack, so they are fast)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from parley_client import (
    CallDirection,
    CallEndCause,
    CallState,
    ErrorType,
    ParleyError,
)
from parley_client.media import PLACEHOLDER_SDP
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.pb import calls as calls_pb
from parley_protocol.pb import echo
from tests.support.calls import established_call
from tests.unit.call_parties import StalledTrack, party
from tests.unit.client_double import harness, wait_until

REPO = Path(__file__).resolve().parents[2]


# -- the state machine, both sides --------------------------------------------------------


async def test_a_call_rings_is_answered_and_the_caller_hangs_up(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        before = time.time()
        call = alice.call("bob", topic="demo")
        assert (call.state, call.direction, call.remote_user_id) == (
            CallState.INITIATING,
            CallDirection.OUTGOING,
            "bob",
        )
        assert call.call_id == call.call_id.lower() and len(call.call_id) == 36
        assert call.headers == {"topic": "demo"}
        assert call.remote_audio_track is None  # signalling only

        incoming = await bob.next_incoming()
        assert (incoming.call_id, incoming.direction, incoming.remote_user_id) == (
            call.call_id,
            CallDirection.INCOMING,
            "alice",
        )
        assert incoming.headers == {"topic": "demo"} and not incoming.details.is_video_offered
        await wait_until(lambda: alice.heard(call) == ["progressing"])  # bob's RingCall
        assert call.state is CallState.PROGRESSING
        assert incoming.state is CallState.INITIATING  # an incoming call rings as INITIATING

        await incoming.answer()
        await call.wait_established(2)
        await incoming.wait_established(2)
        assert alice.heard(call) == ["progressing", "established"]
        assert bob.heard(incoming) == ["established"]
        assert call.state is incoming.state is CallState.ESTABLISHED
        start = h.backend.calls.calls[call.call_id]
        assert start.offer_sdp == PLACEHOLDER_SDP and start.headers == {"topic": "demo"}

        await asyncio.sleep(0.05)
        await call.hangup()
        assert call.state is CallState.ENDED
        details = await incoming.wait_ended(2)
        assert alice.heard(call)[-1] == bob.heard(incoming)[-1] == "ended:HUNG_UP"
        mine = call.details
        assert mine.end_cause is details.end_cause is CallEndCause.HUNG_UP
        assert mine.error is None and details.error is None
        assert before <= mine.started_time <= (mine.progressed_time or 0)
        assert (mine.progressed_time or 0) <= (mine.established_time or 0)
        assert (mine.established_time or 0) <= (mine.ended_time or 0)
        assert 0.04 < mine.duration < 2
        assert alice.calls.calls == [] and bob.calls.calls == []


async def test_the_callee_hangs_up_an_established_call(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        call, incoming = await established_call(alice, bob)
        await incoming.hangup()
        await call.wait_ended(2)
        assert alice.heard(call) == ["progressing", "established", "ended:HUNG_UP"]
        assert bob.heard(incoming) == ["established", "ended:HUNG_UP"]
        assert h.backend.calls.calls[call.call_id].end_cause == calls_pb.CALL_END_CAUSE_HUNG_UP


async def test_every_frame_of_a_call_carries_its_trace_and_the_callee_continues_it(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        # The service's span that offered the call, as its CallIncoming frames carry it.
        offered = f"00-{'ab' * 16}-{'cd' * 8}-01"
        h.backend.calls.event_traceparent = offered
        alice, bob = await party(h, "alice"), await party(h, "bob")
        call, incoming = await established_call(alice, bob)
        await call.send_dtmf("1")
        await call.hangup()
        await incoming.wait_ended(2)
        assert re.fullmatch(f"00-{call.trace_id}-[0-9a-f]{{16}}-01", call.traceparent)
        assert incoming.trace_id == "ab" * 16 and incoming.traceparent == offered

        def traced(user: str) -> dict[str, set[str]]:
            frames = [f for s in h.backend.live_sessions(user) for f in s.frames]
            found: dict[str, set[str]] = {}
            for frame in frames:
                found.setdefault(frame.WhichOneof("body") or "", set()).add(frame.traceparent)
            return found

        mine = traced("alice")
        for body in ("start_call", "send_call_signal", "hangup_call"):  # (no ICE: no media)
            assert mine.get(body) == {call.traceparent}, (body, mine)
        theirs = traced("bob")
        for body in ("ring_call", "answer_call"):
            assert theirs.get(body) == {offered}, (body, theirs)
        assert mine["hello"] == {""}  # the session's own frames are no call's

        # A second call is a trace of its own.
        second, _ = await established_call(alice, bob)
        assert second.trace_id not in (call.trace_id, incoming.trace_id)
        await second.hangup()


async def test_the_callee_declines(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        call = alice.call("bob")
        incoming = await bob.next_incoming()
        await wait_until(lambda: call.state is CallState.PROGRESSING)
        await incoming.hangup()
        assert (await call.wait_ended(2)).end_cause is CallEndCause.DENIED
        assert incoming.details.end_cause is CallEndCause.DENIED
        assert alice.heard(call) == ["progressing", "ended:DENIED"]
        assert bob.heard(incoming) == ["ended:DENIED"]
        with pytest.raises(ParleyError) as caught:
            await call.wait_established(1)
        assert caught.value.code == "WRONG_STATE" and "DENIED" in caught.value.message
        with pytest.raises(ParleyError, match="ended"):
            await incoming.answer()  # too late


async def test_the_caller_cancels_before_the_answer(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        call = alice.call("bob")
        incoming = await bob.next_incoming()
        await wait_until(lambda: call.state is CallState.PROGRESSING)
        await call.hangup()
        assert call.details.end_cause is CallEndCause.CANCELED
        assert (await incoming.wait_ended(2)).end_cause is CallEndCause.CANCELED
        assert alice.heard(call) == ["progressing", "ended:CANCELED"]
        assert bob.heard(incoming) == ["ended:CANCELED"]


async def test_a_call_hung_up_before_start_call_went_out_sends_nothing(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice = await party(h, "alice")
        await party(h, "bob")
        call = alice.call("bob")
        await call.hangup()  # at once, before the task that sends StartCall ran
        assert call.details.end_cause is CallEndCause.CANCELED
        assert alice.heard(call) == ["ended:CANCELED"]
        assert h.backend.calls.bodies_of("alice") == []


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        (calls_pb.CALL_END_CAUSE_NO_ANSWER, CallEndCause.NO_ANSWER),
        (calls_pb.CALL_END_CAUSE_TIMEOUT, CallEndCause.TIMEOUT),
    ],
)
async def test_the_service_ends_an_unanswered_call(
    tmp_path: Path, cause: int, expected: CallEndCause
) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        call = alice.call("bob")
        incoming = await bob.next_incoming()
        await wait_until(lambda: call.state is CallState.PROGRESSING)
        await h.backend.calls.end(call.call_id, cause)
        assert (await call.wait_ended(2)).end_cause is expected
        assert (await incoming.wait_ended(2)).end_cause is expected
        assert alice.heard(call) == ["progressing", f"ended:{expected.name}"]
        assert bob.heard(incoming) == [f"ended:{expected.name}"]


async def test_another_device_answered(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice = await party(h, "alice")
        phone = await party(h, "bob", data_dir=tmp_path / "phone")
        tablet = await party(h, "bob", data_dir=tmp_path / "tablet")
        call = alice.call("bob")
        on_phone, on_tablet = await phone.next_incoming(), await tablet.next_incoming()
        await on_phone.answer()
        await call.wait_established(2)
        details = await on_tablet.wait_ended(2)
        assert details.end_cause is CallEndCause.OTHER_DEVICE_ANSWERED
        assert tablet.heard(on_tablet) == ["ended:OTHER_DEVICE_ANSWERED"]
        assert on_phone.state is CallState.ESTABLISHED
        with pytest.raises(ParleyError, match="ended"):
            await on_tablet.answer()


async def test_an_answer_refused_by_the_service_ends_the_call(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        call = alice.call("bob")
        incoming = await bob.next_incoming()
        h.backend.calls.errors["answer_call"] = ProtocolError(
            ErrorCode.ERROR_CODE_WRONG_STATE, "answered on another device"
        )
        with pytest.raises(ParleyError) as caught:
            await incoming.answer()
        assert caught.value.message == "answered on another device"
        details = await incoming.wait_ended(2)
        assert details.end_cause is CallEndCause.FAILURE  # no CallEnded came to say more
        assert details.error is caught.value
        assert call.state is CallState.PROGRESSING  # the service did not end it


async def test_no_device_reached_asks_the_app_to_push(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice = await party(h, "alice")
        await party(h, "bob", listen=False)  # online, but not listening: not reachable
        call = alice.call("bob")
        await wait_until(lambda: alice.heard(call) == ["push"])
        assert alice.events[call.call_id].push_pairs == [[]]  # no push data until push exists
        assert call.state is CallState.INITIATING  # it keeps ringing until the service ends it
        await asyncio.sleep(0.1)
        assert call.state is CallState.INITIATING
        await h.backend.calls.end(call.call_id, calls_pb.CALL_END_CAUSE_TIMEOUT)
        assert (await call.wait_ended(2)).end_cause is CallEndCause.TIMEOUT
        assert alice.heard(call) == ["push", "ended:TIMEOUT"]


# -- failures -----------------------------------------------------------------------------


async def test_calling_a_user_who_never_registered_fails_at_once(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice = await party(h, "alice")
        call = alice.call("nobody")
        details = await call.wait_ended(2)
        assert details.end_cause is CallEndCause.FAILURE
        assert details.error is not None and details.error.code == "NOT_FOUND"
        assert "never registered" in details.error.message
        assert alice.heard(call) == ["ended:FAILURE"]
        with pytest.raises(ParleyError) as caught:
            await call.wait_established(1)
        assert caught.value is details.error


async def test_calling_without_the_calling_capability_fails(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        await party(h, "bob")
        builder = h.builder("carol").media(False)
        carol, _ = h.client(builder)  # messaging only
        await carol.start()
        call = carol.call_client.call_user("bob")
        details = await call.wait_ended(2)
        assert details.end_cause is CallEndCause.FAILURE
        assert details.error is not None
        assert details.error.code == "CAPABILITY_NOT_ANNOUNCED"
        assert details.error.type is ErrorType.CAPABILITY


async def test_call_user_checks_its_input_and_the_client_at_once(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        builder = h.builder("alice").media(False)
        client, _ = h.client(builder)
        client.set_support_calling(True)
        with pytest.raises(ParleyError) as caught:
            client.call_client.call_user("bob")
        assert caught.value.code == "WRONG_STATE" and "started" in caught.value.message
        await client.start()
        calls = client.call_client
        for user_id, code in (("", "INVALID_USER_ID"), ("x" * 41, "INVALID_USER_ID")):
            with pytest.raises(ParleyError) as caught:
                calls.call_user(user_id)
            assert caught.value.code == code
        big = {"k": "é" * 512}  # 1 + 1024 bytes of UTF-8 (512 characters)
        with pytest.raises(ParleyError) as caught:
            calls.call_user_video("bob", big)
        assert caught.value.code == "PAYLOAD_TOO_LARGE" and "1025 bytes" in caught.value.message
        with pytest.raises(ParleyError) as caught:
            calls.call_user("bob", {"": "x"})
        assert caught.value.code == "INVALID_HEADER"
        fits = {"k": "é" * 511 + "x"}  # 1024 bytes: fine
        call = calls.call_user("bob", fits)
        await call.hangup()
        assert calls.calls == []
        await asyncio.sleep(0.05)
        assert h.backend.calls.bodies_of("alice") == []


async def test_hangup_ends_the_call_promptly_when_the_service_does_not_answer(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        call, incoming = await established_call(alice, bob)
        h.backend.calls.silent.add("hangup_call")
        began = time.monotonic()
        await call.hangup()
        assert time.monotonic() - began < 2
        assert call.details.end_cause is CallEndCause.HUNG_UP  # the cause it expected
        assert incoming.state is CallState.ESTABLISHED  # the service never heard


def _break_ice_credentials(sdp: str) -> str:
    return sdp.replace("a=ice-ufrag:", "a=ice-frag:")


def _offers_only(rewrite: Callable[[str], str]) -> Callable[[str], str]:
    return lambda sdp: rewrite(sdp) if "a=setup:actpass" in sdp else sdp


def _answers_only(rewrite: Callable[[str], str]) -> Callable[[str], str]:
    return lambda sdp: rewrite(sdp) if "a=setup:active" in sdp else sdp


async def test_a_malformed_offer_fails_the_call_on_both_sides(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice", media=True), await party(h, "bob", media=True)
        h.backend.calls.rewrite_sdp = _offers_only(_break_ice_credentials)
        call = alice.call("bob")
        incoming = await bob.next_incoming()
        with pytest.raises(ParleyError) as caught:
            await incoming.answer()
        error = caught.value
        assert (error.code, error.type, error.field) == (
            "INVALID_ARGUMENT",
            ErrorType.OTHER,
            "offer_sdp",
        )
        assert error.message == (
            "the caller's session description: the offer cannot be used: "
            "ICE username fragment or password is missing"
        )
        assert incoming.details.end_cause is CallEndCause.FAILURE
        assert incoming.details.error is error
        # The caller learns it from the service, with the callee's error.
        details = await call.wait_ended(3)
        assert details.end_cause is CallEndCause.FAILURE
        assert details.error is not None and details.error.message == error.message
        [hangup] = h.backend.calls.hangups()
        assert hangup.cause == calls_pb.CALL_END_CAUSE_FAILURE
        assert hangup.error.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT
        assert alice.heard(call) == ["progressing", "ended:FAILURE"]
        assert bob.heard(incoming) == ["ended:FAILURE"]

        # Both clients carry on: a good call, and another feature's request.
        h.backend.calls.rewrite_sdp = None
        await established_call(alice, bob)
        reply = await bob.calls.link.request(echo.EchoRequest(text="fine"), echo.EchoReply)
        assert reply.text == "fine"


async def test_a_malformed_answer_fails_the_call_on_both_sides(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice", media=True), await party(h, "bob", media=True)
        h.backend.calls.rewrite_sdp = _answers_only(_break_ice_credentials)
        call = alice.call("bob")
        incoming = await bob.next_incoming()
        await incoming.answer()
        details = await call.wait_ended(3)
        assert details.end_cause is CallEndCause.FAILURE
        assert details.error is not None
        assert (details.error.code, details.error.field) == ("INVALID_ARGUMENT", "answer_sdp")
        assert "callee's session description" in details.error.message
        assert "ICE username fragment or password is missing" in details.error.message
        theirs = await incoming.wait_ended(3)
        assert theirs.end_cause is CallEndCause.FAILURE
        assert theirs.error is not None and theirs.error.message == details.error.message
        assert alice.heard(call) == ["progressing", "ended:FAILURE"]
        assert bob.heard(incoming) == ["ended:FAILURE"]


async def test_an_established_call_without_media_ends_inactive(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice = await party(h, "alice", media=True, inactive_timeout=0.5)
        bob = await party(h, "bob", media=True)
        call, incoming = await established_call(alice, bob)
        bob.client.audio_controller.set_source(StalledTrack())  # bob's audio stops
        began = time.monotonic()
        details = await call.wait_ended(5)
        assert 0.4 < time.monotonic() - began < 3
        assert details.end_cause is CallEndCause.INACTIVE
        assert details.error is not None and details.error.code == "TIMEOUT"
        assert details.error.message == "no media arrived for 0.5 s"
        theirs = await incoming.wait_ended(3)
        assert theirs.end_cause is CallEndCause.INACTIVE
        assert theirs.error is not None and theirs.error.message == details.error.message
        assert alice.heard(call) == ["progressing", "established", "ended:INACTIVE"]
        assert bob.heard(incoming) == ["established", "ended:INACTIVE"]


# -- waits, terminate, reconnects -----------------------------------------------------------


async def test_waits_time_out_and_are_released_after_the_listeners(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        call = alice.call("bob")
        with pytest.raises(ParleyError) as caught:
            await call.wait_established(0.1)
        assert caught.value.code == "TIMEOUT" and "still" in caught.value.message
        with pytest.raises(ParleyError):
            await call.wait_ended(0.05)
        incoming = await bob.next_incoming()
        waiting = asyncio.ensure_future(call.wait_established(5))
        await incoming.answer()
        await waiting
        assert alice.heard(call)[-1] == "established"  # told before the wait returned
        ended = asyncio.ensure_future(incoming.wait_ended(5))
        await call.hangup()
        details = await ended
        assert bob.heard(incoming)[-1] == "ended:HUNG_UP"
        assert details.end_cause is CallEndCause.HUNG_UP
        assert (await call.wait_ended(0)).end_cause is CallEndCause.HUNG_UP  # at once now


async def test_terminate_ends_every_call(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        await party(h, "carol", listen=False)
        talking, incoming = await established_call(alice, bob)
        ringing = alice.call("carol")
        await wait_until(lambda: alice.heard(ringing) == ["push"])
        waiting = asyncio.ensure_future(talking.wait_ended(5))
        await alice.client.terminate()
        assert waiting.done() and (await waiting).end_cause is CallEndCause.HUNG_UP
        assert alice.heard(talking)[-1] == "ended:HUNG_UP"
        assert alice.heard(ringing)[-1] == "ended:CANCELED"
        assert alice.calls.calls == []
        details = await incoming.wait_ended(2)  # alice's HangupCall went out before Goodbye
        assert details.end_cause is CallEndCause.HUNG_UP
        with pytest.raises(ParleyError):
            alice.calls.call_user("bob")


async def test_a_reconnect_that_resumes_the_session_keeps_every_call(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.backend.windows = True
        alice, bob = await party(h, "alice"), await party(h, "bob")
        await party(h, "carol", listen=False)
        talking, incoming = await established_call(alice, bob)
        ringing = alice.call("carol")
        await wait_until(lambda: alice.heard(ringing) == ["push"])
        await h.gateways[0].drop_all()
        await wait_until(lambda: len(h.gateways[0].live_sessions()) == 3)
        await alice.client.wait_connected(5)
        await bob.client.wait_connected(5)
        assert talking.state is CallState.ESTABLISHED and incoming.state is CallState.ESTABLISHED
        assert ringing.state is CallState.INITIATING
        await h.backend.calls.end(ringing.call_id, calls_pb.CALL_END_CAUSE_TIMEOUT)
        assert (await ringing.wait_ended(2)).end_cause is CallEndCause.TIMEOUT
        await incoming.hangup()
        assert (await talking.wait_ended(2)).end_cause is CallEndCause.HUNG_UP


async def test_a_new_session_after_a_reconnect_ends_only_calls_being_set_up(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        await party(h, "carol", listen=False)
        talking, incoming = await established_call(alice, bob)
        ringing = alice.call("carol")
        await wait_until(lambda: alice.heard(ringing) == ["push"])
        await h.gateways[0].drop_all()  # no resume window: every session starts anew
        details = await ringing.wait_ended(5)
        assert details.end_cause is CallEndCause.FAILURE
        assert details.error is not None and details.error.type is ErrorType.NETWORK
        # The service hears of it once alice is back (so carol's devices stop ringing).
        await wait_until(lambda: h.backend.calls.calls[ringing.call_id].ended)
        assert talking.state is CallState.ESTABLISHED and incoming.state is CallState.ESTABLISHED
        await talking.hangup()  # the service knows alice by user, whatever her session
        assert talking.details.end_cause is CallEndCause.HUNG_UP
        assert h.backend.calls.calls[talking.call_id].ended


# -- in-call signals ------------------------------------------------------------------------


async def test_dtmf_and_video_pauses_reach_the_far_side(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        call, incoming = await established_call(alice, bob, video=True)
        assert incoming.details.is_video_offered and call.details.is_video_offered
        with pytest.raises(ParleyError) as caught:
            call.send_dtmf("12x")
        assert caught.value.code == "INVALID_ARGUMENT"
        await call.send_dtmf("123#")
        await incoming.send_dtmf("*0")
        alice.client.video_controller.pause()
        assert alice.client.video_controller.is_paused
        await wait_until(lambda: "video-paused" in bob.heard(incoming))
        assert incoming.remote_video_paused
        alice.client.video_controller.resume()
        await wait_until(lambda: "video-resumed" in bob.heard(incoming))
        assert bob.heard(incoming) == [
            "established",
            "dtmf:123#",
            "video-paused",
            "video-resumed",
        ]
        await wait_until(lambda: "dtmf:*0" in alice.heard(call))
        signals = h.backend.calls.calls[call.call_id].signals
        assert [s.WhichOneof("kind") for _, s in signals] == [
            "dtmf",
            "dtmf",
            "video_paused",
            "video_paused",
        ]
        await call.hangup()
        with pytest.raises(ParleyError, match="established"):
            call.send_dtmf("1")


async def test_restart_media_renegotiates_in_signalling_only_mode(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        call, incoming = await established_call(alice, bob)
        await call.restart_media()
        await incoming.restart_media()
        kinds = [s.WhichOneof("kind") for _, s in h.backend.calls.calls[call.call_id].signals]
        assert kinds == ["offer_sdp", "answer_sdp", "offer_sdp", "answer_sdp"]
        assert call.state is incoming.state is CallState.ESTABLISHED


async def test_the_client_carries_on_after_a_failed_call(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        h.backend.calls.errors["start_call"] = ProtocolError(
            ErrorCode.ERROR_CODE_UNAVAILABLE, "the calls service is draining"
        )
        failed = alice.call("bob")
        details = await failed.wait_ended(2)
        assert details.error is not None and details.error.type is ErrorType.NETWORK
        del h.backend.calls.errors["start_call"]
        await established_call(alice, bob)
        reply = await alice.client.call_client.link.request(
            echo.EchoRequest(text="still here"), echo.EchoReply
        )
        assert reply.text == "still here"


# -- signalling-only mode -------------------------------------------------------------------

_NO_MEDIA_SCRIPT = """
import asyncio, sys, tempfile
from pathlib import Path
from tests.unit.client_double import harness

async def main():
    with tempfile.TemporaryDirectory() as tmp:
        async with harness(Path(tmp)) as h:
            clients = []
            for user in ("alice", "bob"):
                client, _ = h.client(h.builder(user).media(False))
                client.set_support_calling(True)
                await client.start()
                await client.start_listening_on_active_connection()
                clients.append(client)
            call = clients[0].call_client.call_user("bob")
            for _ in range(200):
                if clients[1].call_client.calls:
                    break
                await asyncio.sleep(0.01)
            incoming = clients[1].call_client.calls[0]
            await incoming.answer()
            await call.wait_established(2)
            await call.hangup()
    loaded = sorted(m for m in ("aiortc", "aioice", "av") if m in sys.modules)
    print("media modules:", loaded)

asyncio.run(main())
"""


def test_signalling_only_mode_never_loads_the_media_stack() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", _NO_MEDIA_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "media modules: []"


class _OwnMedia:
    """A media of the app's own (what a load test plugs in): it says what it was asked."""

    flowing = True

    def __init__(self, call: object) -> None:
        self.call = call
        self.asked: list[str] = []

    async def offer(self) -> str:
        self.asked.append("offer")
        return PLACEHOLDER_SDP.replace("s=-", "s=own")

    async def answer(self, offer_sdp: str) -> str:
        self.asked.append("answer")
        return PLACEHOLDER_SDP

    async def accept_answer(self, answer_sdp: str) -> None:
        self.asked.append("accept")

    async def close(self) -> None:
        self.asked.append("close")


async def test_calls_take_their_media_from_the_apps_factory(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        made: list[_OwnMedia] = []

        def factory(call: object) -> _OwnMedia:
            made.append(_OwnMedia(call))
            return made[-1]

        with pytest.raises(ParleyError):
            h.builder("alice").media_factory("not callable")  # type: ignore[arg-type]
        client, _ = h.client(h.builder("alice").media_factory(factory))
        client.set_support_calling(True)
        await client.start()
        bob = await party(h, "bob")
        call = client.call_client.call_user("bob")
        incoming = await bob.next_incoming()
        await incoming.answer()
        await call.wait_established(2)
        assert [m.call for m in made] == [call] and call.remote_audio_track is None
        assert h.backend.calls.calls[call.call_id].offer_sdp == PLACEHOLDER_SDP.replace(
            "s=-", "s=own"
        )
        await call.hangup()
        assert made[0].asked == ["offer", "accept", "close"]
