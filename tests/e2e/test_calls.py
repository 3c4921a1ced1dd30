"""App-to-app calls end to end: reference clients with real aiortc media on loopback, auth,
two gateway replicas and the calls service as processes, real NATS and PostgreSQL, and a
real TURN server. Tones and video patterns are checked on the far side; every end cause
comes from a real sequence of actions.

The last test kills gateway-a: tests that need both replicas come before it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from parley_client import (
    CallEndCause,
    CallState,
    ErrorType,
    ParleyClient,
    PatternSource,
)
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_protocol import subjects
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import calls as calls_pb
from parley_protocol.pb import client as pb
from tests.support.calls import Party, established_call
from tests.support.impair import StoppableTone
from tests.support.media import dominant_hz, marks, received_audio, rms
from tests.support.turn import Coturn
from tests.support.wire import RawClient, bounded, eventually

from .stack import E2EStack, calling_party, start_stack

RINGING_SECONDS = 4
SETUP_SECONDS = 3


@pytest_asyncio.fixture(scope="module")
async def turn(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Coturn]:
    server = Coturn(tmp_path_factory.mktemp("turn"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: EmbeddedNats,
    postgres_server: EmbeddedPostgres,
    turn: Coturn,
) -> AsyncIterator[E2EStack]:
    home = tmp_path_factory.mktemp("calls")
    db = await postgres_server.create_database(f"e2e_calls_{home.name.replace('-', '_')[:30]}")
    running = await start_stack(
        home,
        nats_server.url,
        db,
        calls_env={
            "PARLEY_CALL_RINGING_TIMEOUT_SECONDS": str(RINGING_SECONDS),
            "PARLEY_CALL_SETUP_TIMEOUT_SECONDS": str(SETUP_SECONDS),
            "PARLEY_TURN_URLS": turn.url,
            "PARLEY_TURN_SECRET": turn.secret,
        },
    )
    try:
        yield running
    finally:
        await running.devstack.stop()


async def _ended(party: Party, call: Any, cause: str) -> bool:
    return f"ended:{cause}" in party.heard(call)


async def _raw_callee(stack: E2EStack, user: str, gateway: str) -> RawClient:
    """A device spoken by hand: signed in with calling, listening."""
    raw = await RawClient.open(stack.ws(gateway))
    await raw.send(
        hello=pb.Hello(
            access_token=await stack.access_token(user, gateway),
            application_key=stack.app_key,
            user_id=user,
            capabilities=pb.Capabilities(calling=True, messaging=True),
        )
    )
    assert (await raw.recv()).WhichOneof("body") == "welcome"
    await raw.request(listen=pb.Listen(listening=True))
    return raw


async def _next(raw: RawClient, body: str) -> pb.Envelope:
    while True:
        frame = await raw.recv(timeout=10)
        if frame.WhichOneof("body") == body:
            return frame


@bounded(60)
async def test_each_side_hears_the_others_tone_across_replicas_and_mute_silences(
    stack: E2EStack, tmp_path: Path
) -> None:
    alice = await calling_party(stack, "alice tone", tmp_path / "a", ["gateway-a"], tone=440)
    bob = await calling_party(stack, "bob tone.*>", tmp_path / "b", ["gateway-b"], tone=880)
    try:
        call, incoming = await established_call(alice, bob)
        assert call.state is CallState.ESTABLISHED and incoming.state is CallState.ESTABLISHED
        assert incoming.remote_user_id == "alice tone" and call.remote_user_id == "bob tone.*>"
        heard_by_alice, heard_by_bob = await asyncio.gather(
            received_audio(call, 1.0), received_audio(incoming, 1.0)
        )
        alice_hz, bob_hz = dominant_hz(heard_by_alice), dominant_hz(heard_by_bob)
        print(f"\nalice hears {alice_hz:.1f} Hz, bob hears {bob_hz:.1f} Hz")
        assert abs(alice_hz - 880) <= 5 and abs(bob_hz - 440) <= 5
        before = rms(await received_audio(incoming, 0.5))
        alice.client.audio_controller.mute()
        await received_audio(incoming, 0.3)  # frames on their way
        muted = rms(await received_audio(incoming, 0.5))
        alice.client.audio_controller.unmute()
        print(f"bob receives rms {before:.3f}, {muted:.5f} while alice is muted")
        assert muted < before / 100
        await incoming.hangup()  # the callee ends it
        for party, c in ((alice, call), (bob, incoming)):
            details = await c.wait_ended(5)
            assert details.end_cause is CallEndCause.HUNG_UP and details.duration > 1
            assert party.heard(c)[-1] == "ended:HUNG_UP"
        assert alice.heard(call)[:2] == ["progressing", "established"]
    finally:
        await alice.client.terminate()
        await bob.client.terminate()


@bounded(60)
async def test_video_patterns_are_recognised_across_replicas(
    stack: E2EStack, tmp_path: Path
) -> None:
    alice = await calling_party(stack, "alice video", tmp_path / "a", ["gateway-a"], tone=440)
    bob = await calling_party(stack, "bob video", tmp_path / "b", ["gateway-b"], tone=880)
    alice.client.video_controller.set_capture_source(PatternSource(pattern_id=7))
    bob.client.video_controller.set_capture_source(PatternSource(pattern_id=9))
    try:
        call, incoming = await established_call(alice, bob, video=True)
        assert incoming.details.is_video_offered
        await eventually(
            lambda: _has(alice.heard(call), "video-added"), what="alice's remote video"
        )
        await eventually(lambda: _has(bob.heard(incoming), "video-added"), what="bob's video")
        seen_by_alice, seen_by_bob = await asyncio.gather(marks(call, 15), marks(incoming, 15))
        for seen, sender in ((seen_by_alice, 9), (seen_by_bob, 7)):
            recognised = [m for m in seen if m is not None]
            assert len(recognised) >= 13 and {m.pattern_id for m in recognised} == {sender}
            counters = [m.counter for m in recognised]
            assert all((b - a) % 256 in (1, 2, 3) for a, b in itertools.pairwise(counters))
        alice.client.video_controller.pause()
        await eventually(lambda: _has(bob.heard(incoming), "video-paused"), what="paused")
        alice.client.video_controller.resume()
        await eventually(lambda: _has(bob.heard(incoming), "video-resumed"), what="resumed")
        await call.send_dtmf("12#")
        await eventually(lambda: _has(bob.heard(incoming), "dtmf:12#"), what="dtmf")
        # A new media path (what the client does when its network changes: aiortc has no ICE
        # restart, so a new peer connection is negotiated through the calls service).
        await call.restart_media()
        assert abs(dominant_hz(await received_audio(incoming, 0.6)) - 440) <= 5
        assert abs(dominant_hz(await received_audio(call, 0.6)) - 880) <= 5
        assert call.state is CallState.ESTABLISHED
        await call.hangup()
    finally:
        await alice.client.terminate()
        await bob.client.terminate()


@bounded(90)
async def test_declined_canceled_unanswered_and_answered_elsewhere(
    stack: E2EStack, tmp_path: Path
) -> None:
    alice = await calling_party(stack, "alice ends", tmp_path / "a", ["gateway-a"])
    phone = await calling_party(stack, "bob ends", tmp_path / "p", ["gateway-a"])
    tablet = await calling_party(stack, "bob ends", tmp_path / "t", ["gateway-b"])
    try:
        # DENIED: a callee device declines; every device of the callee stops ringing.
        call = alice.call("bob ends", topic="demo")
        ringing = [await phone.next_incoming(1), await tablet.next_incoming(1)]
        assert all(c.headers == {"topic": "demo"} for c in ringing)
        await eventually(lambda: _has(alice.heard(call), "progressing"), what="progressing")
        await ringing[0].hangup()
        assert (await call.wait_ended(5)).end_cause is CallEndCause.DENIED
        assert (await ringing[1].wait_ended(5)).end_cause is CallEndCause.DENIED
        # CANCELED: the caller hangs up before an answer.
        call = alice.call("bob ends")
        ringing = [await phone.next_incoming(2), await tablet.next_incoming(2)]
        await call.hangup()
        assert (await call.wait_ended(5)).end_cause is CallEndCause.CANCELED
        for c in ringing:
            assert (await c.wait_ended(5)).end_cause is CallEndCause.CANCELED
        # OTHER_DEVICE_ANSWERED: the tablet answers, the phone stops ringing.
        call = alice.call("bob ends")
        ringing = [await phone.next_incoming(3), await tablet.next_incoming(3)]
        await ringing[1].answer()
        await call.wait_established(10)
        assert (await ringing[0].wait_ended(5)).end_cause is CallEndCause.OTHER_DEVICE_ANSWERED
        await call.hangup()
        assert (await ringing[1].wait_ended(5)).end_cause is CallEndCause.HUNG_UP
        # NO_ANSWER: it rings until the ringing timeout, on both sides.
        call = alice.call("bob ends")
        ringing = [await phone.next_incoming(4), await tablet.next_incoming(4)]
        assert (await call.wait_ended(RINGING_SECONDS + 5)).end_cause is CallEndCause.NO_ANSWER
        for c in ringing:
            assert (await c.wait_ended(5)).end_cause is CallEndCause.NO_ANSWER
    finally:
        for party in (alice, phone, tablet):
            await party.client.terminate()


@bounded(60)
async def test_a_callee_device_that_never_rings_times_out_and_an_offline_one_asks_for_push(
    stack: E2EStack, tmp_path: Path
) -> None:
    alice = await calling_party(stack, "alice timeout", tmp_path / "a", ["gateway-a"])
    silent = await _raw_callee(stack, "bob silent", "gateway-b")  # gets the call, never rings
    try:
        call = alice.call("bob silent")
        incoming = (await _next(silent, "call_incoming")).call_incoming
        assert incoming.caller_user_id == "alice timeout" and incoming.offer_sdp.startswith("v=0")
        details = await call.wait_ended(SETUP_SECONDS + 5)
        assert details.end_cause is CallEndCause.TIMEOUT
        ended = (await _next(silent, "call_ended")).call_ended
        assert ended.cause == calls_pb.CALL_END_CAUSE_TIMEOUT
        # A registered user with no device online: the app is asked to push; it rings on.
        status, _ = await stack.register("carol away")
        assert status == 200
        call = alice.call("carol away")
        await eventually(lambda: _has(alice.heard(call), "push"), what="a push request")
        assert list(alice.events[call.call_id].push_pairs[0]) == []
        assert (await call.wait_ended(RINGING_SECONDS + 5)).end_cause is CallEndCause.NO_ANSWER
        # A user who never registered a device in this application: at once, with the cause.
        call = alice.call("nobody ever")
        details = await call.wait_ended(5)
        assert details.end_cause is CallEndCause.FAILURE
        assert details.error is not None and details.error.code == "NOT_FOUND"
        assert "never registered" in details.error.message
    finally:
        await silent.close()
        await alice.client.terminate()


@bounded(60)
async def test_a_malformed_answer_fails_the_call_and_everyone_carries_on(
    stack: E2EStack, tmp_path: Path
) -> None:
    alice = await calling_party(stack, "alice sdp", tmp_path / "a", ["gateway-a"], tone=440)
    mallory = await _raw_callee(stack, "mallory sdp", "gateway-b")
    try:
        call = alice.call("mallory sdp")
        incoming = (await _next(mallory, "call_incoming")).call_incoming
        await mallory.request(ring_call=calls_pb.RingCall(call_id=incoming.call_id))
        await mallory.request(
            answer_call=calls_pb.AnswerCall(
                call_id=incoming.call_id, answer_sdp="v=0\r\nthis is not a session\r\n"
            )
        )
        details = await call.wait_ended(10)
        assert details.end_cause is CallEndCause.FAILURE
        assert details.error is not None and details.error.type is ErrorType.OTHER
        assert details.error.code == "INVALID_ARGUMENT"
        ended = (await _next(mallory, "call_ended")).call_ended
        assert ended.cause == calls_pb.CALL_END_CAUSE_FAILURE
        assert ended.error.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT
        # The gateway and both parties carry on: another call works.
        bob = await calling_party(stack, "bob after", tmp_path / "b", ["gateway-b"], tone=880)
        try:
            good, other = await established_call(alice, bob)
            assert abs(dominant_hz(await received_audio(other, 0.6)) - 440) <= 5
            await good.hangup()
        finally:
            await bob.client.terminate()
        assert await mallory.ping()
    finally:
        await mallory.close()
        await alice.client.terminate()


@bounded(60)
async def test_an_established_call_without_media_ends_inactive(
    stack: E2EStack, tmp_path: Path
) -> None:
    alice = await calling_party(
        stack, "alice idle", tmp_path / "a", ["gateway-a"], tone=440, inactive=2
    )
    bob = await calling_party(stack, "bob idle", tmp_path / "b", ["gateway-b"])
    source = StoppableTone(880)
    bob.client.audio_controller.set_source(source)
    try:
        call, incoming = await established_call(alice, bob)
        source.flowing.clear()  # bob's media stops; his session and the call's signalling go on
        details = await call.wait_ended(10)
        assert details.end_cause is CallEndCause.INACTIVE
        assert (await incoming.wait_ended(5)).end_cause is CallEndCause.INACTIVE
    finally:
        await alice.client.terminate()
        await bob.client.terminate()


@bounded(60)
async def test_only_the_parties_act_on_a_call_and_other_applications_are_refused(
    stack: E2EStack, tmp_path: Path
) -> None:
    alice = await calling_party(stack, "alice auth", tmp_path / "a", ["gateway-a"])
    bob = await calling_party(stack, "bob auth", tmp_path / "b", ["gateway-b"])
    created = await stack.admin(
        "create-app",
        "--account",
        str(stack.app["account_id"]),
        "--name",
        "Other app",
        "--environment",
        "sandbox",
        "--json",
    )
    assert created is not None
    other = (str(created["application_key"]), str(created["application_secret"]))
    outsider = await calling_party(stack, "bob auth", tmp_path / "o", ["gateway-a"], app=other)
    eve = await _raw_callee(stack, "eve auth", "gateway-a")
    try:
        call = alice.call("bob auth")
        await bob.next_incoming(1)
        # Another user of the application: not a party.
        seq = await eve.send(hangup_call=calls_pb.HangupCall(call_id=call.call_id))
        error = await eve.expect_error(ErrorCode.ERROR_CODE_PERMISSION_DENIED, reply_to=seq)
        assert "not a party" in error.reason
        # Another application: its "bob auth" is someone else, and the call is not there.
        from_elsewhere = outsider.call("alice auth")
        details = await from_elsewhere.wait_ended(5)
        assert details.end_cause is CallEndCause.FAILURE and details.error is not None
        assert details.error.code == "NOT_FOUND"
        assert call.state is not CallState.ENDED  # untouched
        await call.hangup()
    finally:
        await eve.close()
        for party in (alice, bob, outsider):
            await party.client.terminate()


@bounded(90)
async def test_media_relayed_through_turn_only(
    stack: E2EStack, tmp_path: Path, turn: Coturn
) -> None:
    alice = await calling_party(
        stack, "alice relay", tmp_path / "a", ["gateway-a"], tone=440, relay=True
    )
    bob = await calling_party(
        stack, "bob relay", tmp_path / "b", ["gateway-b"], tone=880, relay=True
    )
    try:
        call, incoming = await established_call(alice, bob)
        heard = await received_audio(incoming, 1.0)
        assert abs(dominant_hz(heard) - 440) <= 5
        assert abs(dominant_hz(await received_audio(call, 1.0)) - 880) <= 5
        log = (turn.workdir / "turnserver.log").read_text(errors="replace")
        for user in ("alice relay", "bob relay"):  # both allocated relays there
            assert f"{stack.app_key}.{subjects.encode_user_id(user)}" in log
        await call.hangup()
    finally:
        await alice.client.terminate()
        await bob.client.terminate()


@bounded(90)
async def test_a_killed_gateway_does_not_end_an_established_call(
    stack: E2EStack, tmp_path: Path
) -> None:
    alice = await calling_party(
        stack, "alice stays", tmp_path / "a", ["gateway-a", "gateway-b"], tone=440
    )
    bob = await calling_party(stack, "bob stays", tmp_path / "b", ["gateway-b"], tone=880)
    try:
        assert alice.client.gateway_id == "gateway-a"
        call, incoming = await established_call(alice, bob)
        stack.kill("gateway-a")  # alice's signalling moves to gateway-b and resumes
        await eventually(lambda: _on(alice.client, "gateway-b"), timeout=10, what="resumed")
        assert call.state is CallState.ESTABLISHED
        assert abs(dominant_hz(await received_audio(incoming, 0.6)) - 440) <= 5
        await call.hangup()
        assert (await incoming.wait_ended(5)).end_cause is CallEndCause.HUNG_UP
        assert (await call.wait_ended(5)).end_cause is CallEndCause.HUNG_UP
    finally:
        await alice.client.terminate()
        await bob.client.terminate()


async def _has(items: list[str], item: str) -> bool:
    return item in items


async def _on(client: ParleyClient, gateway: str) -> bool:
    return client.is_started and client.gateway_id == gateway
