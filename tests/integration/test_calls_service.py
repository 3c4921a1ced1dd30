"""The calls service in process, with auth and two gateways on real NATS and PostgreSQL,
spoken to by raw WebSocket devices: offers to several devices, the first answer winning,
every way a call ends, the timeouts and their sweepers, who may act on a call, signals,
bad inputs, ICE servers, and an answered call across a NATS restart."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS

from parley.v1 import auth_pb2, calls_pb2, common_pb2
from parley_calls.app import setup as calls_setup
from parley_calls.app import store_of, sweeper_of
from parley_calls.settings import CallsSettings
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_protocol import subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.pb import client
from parley_service import runtime as rt
from parley_service.bus import Bus
from parley_service.bus import request as bus_request
from tests.integration.gateway_stack import (
    App,
    People,
    Stack,
    module_stack,
    start_stack,
    unique_user,
)
from tests.support.metrics import sample_sum
from tests.support.wire import SignedInDevice, bounded, eventually

E = ErrorCode
C = calls_pb2
OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=offer\r\nt=0 0\r\n"
ANSWER = "v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=answer\r\nt=0 0\r\n"


class Device(SignedInDevice):
    """One signed-in device with the calls service's requests."""

    async def ended(self, cause: int, timeout: float = 5.0) -> C.CallEnded:
        ended = (await self.event("call_ended", timeout)).call_ended
        assert ended.cause == cause, ended
        return ended

    async def start(
        self, callee: str, call_id: str | None = None, **fields: Any
    ) -> tuple[str, C.StartCallReply]:
        call_id = call_id or str(uuid.uuid4())
        reply = await self.ok(
            start_call=C.StartCall(
                call_id=call_id, callee_user_id=callee, offer_sdp=OFFER, **fields
            )
        )
        return call_id, reply.start_call_reply

    async def ring(self, call_id: str) -> C.CallAck:
        return (await self.ok(ring_call=C.RingCall(call_id=call_id))).call_ack

    async def answer(self, call_id: str) -> C.CallAck:
        reply = await self.ok(answer_call=C.AnswerCall(call_id=call_id, answer_sdp=ANSWER))
        return reply.call_ack

    async def hang_up(self, call_id: str, **fields: Any) -> C.CallAck:
        return (await self.ok(hangup_call=C.HangupCall(call_id=call_id, **fields))).call_ack

    async def signal(self, call_id: str, **kind: Any) -> client.Envelope:
        return await self.request(
            send_call_signal=C.SendCallSignal(call_id=call_id, signal=C.CallSignal(**kind))
        )

    async def goodbye(self) -> None:
        await self.raw.send(goodbye=client.Goodbye(reason="done"))


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> AsyncIterator[Stack]:
    async with module_stack(nats_server.url, postgres_server, "test_calls", gateways=2) as s:
        yield s


def calls_settings(nats_url: str, **values: Any) -> CallsSettings:
    return CallsSettings(nats_url=nats_url, health_port=0, drain_timeout_seconds=2.0, **values)


@asynccontextmanager
async def calls_service(
    nats_url: str, replicas: int = 1, **values: Any
) -> AsyncIterator[list[rt.Runtime]]:
    """Replicas of the calls service in process, stopped afterwards."""
    runtimes: list[rt.Runtime] = []
    try:
        for _ in range(replicas):
            runtimes.append(await rt.start(calls_settings(nats_url, **values), calls_setup))
        for runtime in runtimes:
            await asyncio.wait_for(sweeper_of(runtime).synced.wait(), 5)
        yield runtimes
    finally:
        for runtime in runtimes:
            await rt.stop(runtime, drain=False)


@pytest_asyncio.fixture
async def calls(nats_server: EmbeddedNats) -> AsyncIterator[rt.Runtime]:
    """One replica with the default timeouts (no call ends by itself within a test)."""
    async with calls_service(nats_server.url) as runtimes:
        yield runtimes[0]


@pytest_asyncio.fixture
async def people(stack: Stack, app: App) -> AsyncIterator[People[Device]]:
    found = People(stack, app, Device)
    try:
        yield found
    finally:
        await found.close()


_user = unique_user


def _ended(cause: str) -> float:
    return sample_sum("parley_calls_ended_total", cause=cause)


async def _record(runtime: rt.Runtime, app: App, call_id: str) -> C.CallRecord | None:
    stored = await store_of(runtime).get(app.key, call_id)
    return None if stored is None else stored.record


# -- a call, from start to end ----------------------------------------------------------


async def test_a_call_rings_on_every_listening_device_and_the_first_answer_wins(
    people: People[Device], calls: rt.Runtime, app: App
) -> None:
    caller_id, callee_id = _user("ann"), _user("bob")
    caller = await people.device(caller_id, gateway=0, listening=False)
    phone = await people.device(callee_id, gateway=0)
    tablet = await people.device(callee_id, gateway=1)
    muted = await people.device(callee_id, gateway=1, listening=False)

    began = time.time() * 1000
    call_id, started = await caller.start(callee_id, video=True, headers={"x-topic": "lunch"})
    assert (started.call_id, started.devices_reached, list(started.push_pairs)) == (
        call_id,
        2,
        [],
    )
    for device in (phone, tablet):
        incoming = (await device.event("call_incoming")).call_incoming
        assert (incoming.call_id, incoming.caller_user_id, incoming.video) == (
            call_id,
            caller_id,
            True,
        )
        assert dict(incoming.headers) == {"x-topic": "lunch"} and incoming.offer_sdp == OFFER
        assert began - 1000 <= incoming.started_at_ms <= time.time() * 1000
    await muted.quiet("call_incoming", 0.3)  # not listening: not offered

    assert (await phone.ring(call_id)).phase == C.CALL_PHASE_RINGING
    assert (await caller.event("call_progressing")).call_progressing.call_id == call_id
    assert (await tablet.ring(call_id)).phase == C.CALL_PHASE_RINGING
    await caller.quiet("call_progressing")  # once

    assert (await tablet.answer(call_id)).phase == C.CALL_PHASE_ANSWERED
    answered = (await caller.event("call_answered")).call_answered
    assert (answered.call_id, answered.answer_sdp) == (call_id, ANSWER)
    await phone.ended(C.CALL_END_CAUSE_OTHER_DEVICE_ANSWERED)
    await tablet.quiet("call_ended", 0.3)
    err = await phone.refused(
        E.ERROR_CODE_WRONG_STATE,
        answer_call=C.AnswerCall(call_id=call_id, answer_sdp=ANSWER),
    )
    assert err.reason == "the call was answered on another device"
    assert (await tablet.answer(call_id)).phase == C.CALL_PHASE_ANSWERED  # a retry: the same
    # Nor may the device that lost hang up the call of the one that won.
    await phone.refused(E.ERROR_CODE_WRONG_STATE, hangup_call=C.HangupCall(call_id=call_id))

    record = await _record(calls, people.app, call_id)
    assert record is not None and record.phase == C.CALL_PHASE_ANSWERED
    assert record.answered_session_id == tablet.session_id
    assert set(record.offered_session_ids) == {phone.session_id, tablet.session_id}
    assert record.deadline_ms == 0

    ended_before = _ended("hung_up")
    assert (await caller.hang_up(call_id)).phase == C.CALL_PHASE_ENDED
    ended = await tablet.ended(C.CALL_END_CAUSE_HUNG_UP)
    assert ended.call_id == call_id and ended.ended_at_ms >= record.answered_at_ms
    await caller.quiet("call_ended", 0.3)  # the hanger has its reply
    assert (await caller.hang_up(call_id)).phase == C.CALL_PHASE_ENDED  # idempotent
    assert (await tablet.hang_up(call_id)).phase == C.CALL_PHASE_ENDED
    assert _ended("hung_up") == ended_before + 1
    record = await _record(calls, people.app, call_id)
    assert record is not None and record.end_cause == C.CALL_END_CAUSE_HUNG_UP


async def test_an_answer_that_comes_before_the_ring_still_tells_the_caller_it_progressed(
    people: People[Device], calls: rt.Runtime, app: App
) -> None:
    """A device sends RingCall and AnswerCall at once; they may reach the service in either
    order. The caller hears CallProgressing before CallAnswered all the same, once."""
    caller_id, callee_id = _user("ann"), _user("bob")
    caller = await people.device(caller_id, gateway=0, listening=False)
    phone = await people.device(callee_id, gateway=1)
    call_id, _ = await caller.start(callee_id)
    await phone.event("call_incoming")
    assert (await phone.answer(call_id)).phase == C.CALL_PHASE_ANSWERED  # no ring first
    assert (await caller.event("call_progressing")).call_progressing.call_id == call_id
    assert (await caller.event("call_answered")).call_answered.call_id == call_id
    assert (await phone.ring(call_id)).phase == C.CALL_PHASE_ANSWERED  # the late ring
    await caller.quiet("call_progressing")
    await caller.hang_up(call_id)


async def test_a_concurrent_double_answer_has_exactly_one_winner(
    people: People[Device], nats_server: EmbeddedNats
) -> None:
    caller_id, callee_id = _user("cat"), _user("dan")
    caller = await people.device(caller_id, gateway=0, listening=False)
    a = await people.device(callee_id, gateway=0)
    b = await people.device(callee_id, gateway=1)
    async with calls_service(nats_server.url, replicas=2):
        for _ in range(5):
            call_id, started = await caller.start(callee_id)
            assert started.devices_reached == 2
            for device in (a, b):
                await device.event("call_incoming")
            replies = await asyncio.gather(
                a.request(answer_call=C.AnswerCall(call_id=call_id, answer_sdp=ANSWER)),
                b.request(answer_call=C.AnswerCall(call_id=call_id, answer_sdp=ANSWER)),
            )
            kinds = sorted(r.WhichOneof("body") for r in replies)
            assert kinds == ["call_ack", "error"], replies
            winner, loser = (a, b) if replies[0].WhichOneof("body") == "call_ack" else (b, a)
            lost = replies[1] if winner is a else replies[0]
            assert lost.error.code == E.ERROR_CODE_WRONG_STATE
            await caller.event("call_answered")
            await caller.quiet("call_answered", 0.2)
            await loser.ended(C.CALL_END_CAUSE_OTHER_DEVICE_ANSWERED)
            await winner.hang_up(call_id)
            await caller.ended(C.CALL_END_CAUSE_HUNG_UP)


async def test_hang_ups_cancel_decline_and_end_for_both_sides(
    people: People[Device], calls: rt.Runtime
) -> None:
    caller_id, callee_id = _user("eli"), _user("fay")
    caller = await people.device(caller_id, gateway=1, listening=False)
    a = await people.device(callee_id, gateway=0)
    b = await people.device(callee_id, gateway=1)

    async def offered() -> str:
        call_id, _ = await caller.start(callee_id)
        for device in (a, b):
            await device.event("call_incoming")
        return call_id

    # The caller cancels before an answer: everyone hears it, the caller too.
    call_id = await offered()
    await a.ring(call_id)
    await caller.event("call_progressing")
    assert (await caller.hang_up(call_id)).phase == C.CALL_PHASE_ENDED
    for device in (caller, a, b):
        assert (await device.ended(C.CALL_END_CAUSE_CANCELED)).call_id == call_id

    # A callee device declines.
    call_id = await offered()
    await b.hang_up(call_id)
    for device in (caller, a, b):
        await device.ended(C.CALL_END_CAUSE_DENIED)
    await a.refused(
        E.ERROR_CODE_WRONG_STATE, answer_call=C.AnswerCall(call_id=call_id, answer_sdp=ANSWER)
    )

    # The callee ends an answered call: the caller hears HUNG_UP.
    call_id = await offered()
    await a.answer(call_id)
    await caller.event("call_answered")
    await b.ended(C.CALL_END_CAUSE_OTHER_DEVICE_ANSWERED)
    await a.hang_up(call_id)
    await caller.ended(C.CALL_END_CAUSE_HUNG_UP)
    await a.quiet("call_ended", 0.3)

    # A device that saw a failure says so: both parties hear it, with its error.
    call_id = await offered()
    await b.answer(call_id)
    await caller.event("call_answered")
    await a.ended(C.CALL_END_CAUSE_OTHER_DEVICE_ANSWERED)
    broken = common_pb2.Error(code=E.ERROR_CODE_TIMEOUT, reason="ICE failed")
    await b.hang_up(call_id, cause=C.CALL_END_CAUSE_FAILURE, error=broken)
    for device in (caller, b):
        ended = await device.ended(C.CALL_END_CAUSE_FAILURE)
        assert (ended.error.code, ended.error.reason) == (E.ERROR_CODE_TIMEOUT, "ICE failed")

    # ... and inactivity, from the caller's side before an answer too.
    call_id = await offered()
    await caller.hang_up(call_id, cause=C.CALL_END_CAUSE_INACTIVE)
    for device in (caller, a, b):
        assert not (await device.ended(C.CALL_END_CAUSE_INACTIVE)).HasField("error")


async def test_signals_are_relayed_between_the_parties_of_an_answered_call_only(
    people: People[Device], calls: rt.Runtime
) -> None:
    caller_id, callee_id = _user("gus"), _user("hal")
    caller = await people.device(caller_id, gateway=0, listening=False)
    a = await people.device(callee_id, gateway=1)
    b = await people.device(callee_id, gateway=0)
    call_id, _ = await caller.start(callee_id)
    await a.event("call_incoming")
    reply = await caller.signal(call_id, dtmf="1")
    assert reply.error.code == E.ERROR_CODE_WRONG_STATE
    assert reply.error.reason == "the call is not answered yet"
    await a.answer(call_id)
    await caller.event("call_answered")

    for sender, receiver, kind in (
        (caller, a, {"dtmf": "12#*A"}),
        (a, caller, {"video_paused": True}),
        (a, caller, {"video_paused": False}),
        (caller, a, {"offer_sdp": OFFER}),
        (a, caller, {"answer_sdp": ANSWER}),
    ):
        reply = await sender.signal(call_id, **kind)
        assert reply.call_ack.phase == C.CALL_PHASE_ANSWERED, reply
        received = (await receiver.event("call_signal_received")).call_signal_received
        assert received.call_id == call_id
        assert received.signal == C.CallSignal(**kind)
    # The callee device that did not answer is not in the call.
    assert (await b.signal(call_id, dtmf="1")).error.code == E.ERROR_CODE_PERMISSION_DENIED
    assert (await caller.signal(call_id, dtmf="x")).error.field == "signal.dtmf"
    assert (await caller.signal(call_id, offer_sdp="o=")).error.field == "signal.offer_sdp"
    assert (await caller.signal(call_id)).error.field == "signal"
    await caller.hang_up(call_id)
    reply = await a.signal(call_id, dtmf="1")
    assert (reply.error.code, reply.error.reason) == (E.ERROR_CODE_WRONG_STATE, "the call ended")


# -- who may act on a call --------------------------------------------------------------


async def test_a_callee_who_never_registered_is_not_found_at_once(
    people: People[Device], calls: rt.Runtime, stack: Stack, app: App, bus: NATS
) -> None:
    caller = await people.device(_user("ida"), listening=False)
    nobody = _user("nobody")
    err = await caller.refused(
        E.ERROR_CODE_NOT_FOUND,
        start_call=C.StartCall(call_id=str(uuid.uuid4()), callee_user_id=nobody, offer_sdp=OFFER),
    )
    assert err.reason == f"{nobody} has never registered a device in this application"
    assert err.field == "callee_user_id"
    # Auth's lookup: every registration counts, whether the device is online or not.
    await stack.register(app, nobody)
    await stack.register(app, nobody)

    async def lookup(app_key: str, user_id: str) -> auth_pb2.UserLookupResponse:
        request = auth_pb2.UserLookupRequest(application_key=app_key, user_id=user_id)
        return await bus_request(
            bus, subjects.AUTH_USER_LOOKUP, request, auth_pb2.UserLookupResponse
        )

    assert await lookup(app.key, nobody) == auth_pb2.UserLookupResponse(registered=True, devices=2)
    other = await stack.create_app()
    assert not (await lookup(other.key, nobody)).registered
    with pytest.raises(ParleyError) as info:
        await lookup(app.key, "")
    assert info.value.code == E.ERROR_CODE_INVALID_USER_ID


async def test_only_the_parties_act_on_a_call(
    people: People[Device], calls: rt.Runtime, stack: Stack
) -> None:
    caller_id, callee_id, stranger_id = _user("jay"), _user("kim"), _user("lou")
    caller = await people.device(caller_id, listening=False)
    callee = await people.device(callee_id, gateway=1)
    stranger = await people.device(stranger_id)
    other_app = await stack.create_app()
    foreigner = await people.device(caller_id, app=other_app)  # same user id, other app
    await stack.register(other_app, callee_id)

    call_id, first = await caller.start(callee_id)
    await callee.event("call_incoming")
    # A retried StartCall is the same call; anyone else's with the same id is refused.
    assert (await caller.start(callee_id, call_id=call_id))[1] == first
    await callee.quiet("call_incoming", 0.3)
    start_again = C.StartCall(call_id=call_id, callee_user_id=callee_id, offer_sdp=OFFER)
    await stranger.refused(E.ERROR_CODE_PERMISSION_DENIED, start_call=start_again)

    bodies: list[dict[str, Any]] = [
        {"ring_call": C.RingCall(call_id=call_id)},
        {"answer_call": C.AnswerCall(call_id=call_id, answer_sdp=ANSWER)},
        {"hangup_call": C.HangupCall(call_id=call_id)},
        {
            "send_call_signal": C.SendCallSignal(
                call_id=call_id, signal=C.CallSignal(video_paused=True)
            )
        },
    ]
    for body in bodies:
        err = await stranger.refused(E.ERROR_CODE_PERMISSION_DENIED, **body)
        assert err.reason == "you are not a party of this call"
        err = await foreigner.refused(E.ERROR_CODE_NOT_FOUND, **body)
        assert err.reason == f"no call {call_id} in this application"
    # The caller neither rings nor answers its own call.
    await caller.refused(E.ERROR_CODE_PERMISSION_DENIED, ring_call=C.RingCall(call_id=call_id))
    # A device of the callee that came online after the offer was not offered it.
    late = await people.device(callee_id)
    for body in bodies[:2]:
        err = await late.refused(E.ERROR_CODE_PERMISSION_DENIED, **body)
        assert err.reason == "this device was not offered the call"
    await callee.answer(call_id)
    await caller.event("call_answered")
    record = await _record(calls, people.app, call_id)
    assert record is not None and record.phase == C.CALL_PHASE_ANSWERED
    await caller.hang_up(call_id)


async def test_bad_inputs_get_their_own_error_and_the_session_lives(
    people: People[Device], calls: rt.Runtime, stack: Stack, app: App
) -> None:
    me, callee_id = _user("max"), _user("ned")
    caller = await people.device(me, listening=False)
    await people.device(callee_id)

    def start(**fields: Any) -> dict[str, Any]:
        values: dict[str, Any] = {
            "call_id": str(uuid.uuid4()),
            "callee_user_id": callee_id,
            "offer_sdp": OFFER,
        }
        values.update(fields)
        return {"start_call": C.StartCall(**values)}

    cases: list[tuple[dict[str, Any], int, str]] = [
        (start(headers={"x-big": "a" * 1020}), E.ERROR_CODE_PAYLOAD_TOO_LARGE, "headers"),
        (start(headers={"": "v"}), E.ERROR_CODE_INVALID_HEADER, "headers"),
        (start(call_id="not-a-uuid"), E.ERROR_CODE_INVALID_ARGUMENT, "call_id"),
        (start(call_id=str(uuid.uuid4()).upper()), E.ERROR_CODE_INVALID_ARGUMENT, "call_id"),
        (start(offer_sdp="hello"), E.ERROR_CODE_INVALID_ARGUMENT, "offer_sdp"),
        (start(offer_sdp="v=0" + "a" * 40_000), E.ERROR_CODE_PAYLOAD_TOO_LARGE, "offer_sdp"),
        (start(callee_user_id=me), E.ERROR_CODE_INVALID_ARGUMENT, "callee_user_id"),
        (start(callee_user_id=""), E.ERROR_CODE_INVALID_USER_ID, "callee_user_id"),
        (start(callee_user_id="x" * 41), E.ERROR_CODE_INVALID_USER_ID, "callee_user_id"),
        (
            start(callee_user_id="", conference_id="r" * 65),
            E.ERROR_CODE_INVALID_CONFERENCE_ID,
            "conference_id",
        ),
        (
            start(conference_id="room"),
            E.ERROR_CODE_INVALID_ARGUMENT,
            "callee_user_id",
        ),
        ({"ring_call": C.RingCall(call_id="")}, E.ERROR_CODE_INVALID_ARGUMENT, "call_id"),
        (
            {"hangup_call": C.HangupCall(call_id=str(uuid.uuid4()))},
            E.ERROR_CODE_NOT_FOUND,
            "call_id",
        ),
        (
            {
                "hangup_call": C.HangupCall(
                    call_id=str(uuid.uuid4()), cause=C.CALL_END_CAUSE_HUNG_UP
                )
            },
            E.ERROR_CODE_INVALID_ARGUMENT,
            "cause",
        ),
        (
            {"answer_call": C.AnswerCall(call_id=str(uuid.uuid4()), answer_sdp="")},
            E.ERROR_CODE_INVALID_ARGUMENT,
            "answer_sdp",
        ),
    ]
    for body, code, field in cases:
        err = await caller.refused(code, **body)
        assert err.field == field, (body, err)
    assert (await caller.raw.ping()).client_time_ms == 123  # the session lives

    # A session that did not announce the calling capability is refused at the gateway.
    raw = await stack.connect()
    try:
        await raw.send(
            hello=client.Hello(
                access_token=await stack.token(app, me),
                application_key=app.key,
                user_id=me,
                capabilities=client.Capabilities(messaging=True),
                client_version="tests",
            )
        )
        assert (await raw.recv()).WhichOneof("body") == "welcome"
        seq = await raw.send(**start())
        err = await raw.expect_error(E.ERROR_CODE_CAPABILITY_NOT_ANNOUNCED, reply_to=seq)
        assert "calling" in err.reason
        assert await raw.ping()
    finally:
        await raw.close()


# -- ICE servers ------------------------------------------------------------------------


async def test_ice_servers_carry_turn_credentials_of_the_rest_scheme(
    people: People[Device], nats_server: EmbeddedNats, app: App
) -> None:
    user = _user("ola")
    device = await people.device(user, listening=False)
    async with calls_service(nats_server.url):
        reply = await device.ok(get_ice_servers=C.GetIceServers())
        assert list(reply.ice_servers.servers) == [] and reply.ice_servers.expires_at_ms == 0

    urls = (
        "stun:stun.example.org:3478, turn:turn.example.org:3478?transport=udp,turns:t.example.org"
    )
    async with calls_service(
        nats_server.url, turn_urls=urls, turn_secret="s3cret", turn_ttl_seconds=600
    ):
        now = int(time.time())
        servers = (await device.ok(get_ice_servers=C.GetIceServers())).ice_servers
    stun, turn = servers.servers
    assert list(stun.urls) == ["stun:stun.example.org:3478"] and not stun.username
    assert list(turn.urls) == [
        "turn:turn.example.org:3478?transport=udp",
        "turns:t.example.org",
    ]
    expiry, name = turn.username.split(":")
    assert name == f"{app.key}.{subjects.encode_user_id(user)}"
    assert now + 600 <= int(expiry) <= now + 602
    assert servers.expires_at_ms == int(expiry) * 1000
    expected = hmac.new(b"s3cret", turn.username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(turn.credential) == expected


# -- calls nobody ends ------------------------------------------------------------------


@bounded(30)
async def test_set_up_and_ringing_timeouts_end_calls_and_ended_calls_linger(
    people: People[Device], nats_server: EmbeddedNats, stack: Stack, app: App
) -> None:
    caller_id, callee_id, offline_id = _user("pam"), _user("quinn"), _user("ray")
    caller = await people.device(caller_id, listening=False)
    callee = await people.device(callee_id, gateway=1)
    await stack.register(app, offline_id)  # registered, never online
    async with calls_service(
        nats_server.url,
        call_setup_timeout_seconds=1.0,
        call_ringing_timeout_seconds=2.0,
        call_linger_seconds=2.0,
        call_sweep_seconds=0.1,
    ) as (runtime,):
        # No device rings within the set-up timeout.
        began = time.monotonic()
        call_id, _ = await caller.start(callee_id)
        await callee.event("call_incoming")
        await caller.ended(C.CALL_END_CAUSE_TIMEOUT)
        await callee.ended(C.CALL_END_CAUSE_TIMEOUT)
        assert 0.9 <= time.monotonic() - began < 2.5
        assert (await caller.hang_up(call_id)).phase == C.CALL_PHASE_ENDED  # "ended"

        # A device rings, nobody answers.
        began = time.monotonic()
        rung, _ = await caller.start(callee_id)
        await callee.event("call_incoming")
        await callee.ring(rung)
        await caller.ended(C.CALL_END_CAUSE_NO_ANSWER, timeout=4)
        await callee.ended(C.CALL_END_CAUSE_NO_ANSWER)
        assert 1.9 <= time.monotonic() - began < 3.5

        # A registered callee with no device online: the call rings until the timeout.
        began = time.monotonic()
        _, started = await caller.start(offline_id)
        assert started.devices_reached == 0
        await caller.ended(C.CALL_END_CAUSE_NO_ANSWER, timeout=4)
        assert 1.9 <= time.monotonic() - began < 3.5

        # The ended record goes after its linger: late requests then hear "unknown".
        async def forgotten() -> bool:
            return await _record(runtime, app, call_id) is None

        await eventually(forgotten, timeout=5, what="the ended record expired")
        await caller.refused(E.ERROR_CODE_NOT_FOUND, hangup_call=C.HangupCall(call_id=call_id))
        sweeper = sweeper_of(runtime)
        await eventually(
            _async(lambda: call_id not in str(sweeper.index)), what="the index forgot it"
        )


@bounded(30)
async def test_two_sweeping_replicas_end_a_timed_out_call_once(
    people: People[Device], nats_server: EmbeddedNats
) -> None:
    caller_id, callee_id = _user("sid"), _user("tom")
    caller = await people.device(caller_id, listening=False)
    callee = await people.device(callee_id, gateway=1)
    async with calls_service(
        nats_server.url, replicas=2, call_setup_timeout_seconds=1.0, call_sweep_seconds=0.05
    ):
        before = _ended("timeout")
        await caller.start(callee_id)
        await callee.event("call_incoming")
        await caller.ended(C.CALL_END_CAUSE_TIMEOUT)
        await callee.ended(C.CALL_END_CAUSE_TIMEOUT)
        await caller.quiet("call_ended", 1.0)
        await callee.quiet("call_ended", 0.1)
        assert _ended("timeout") == before + 1  # both replicas count in this process

    # Both sweeping the same due calls at the same moment: each call ends once.
    async with calls_service(
        nats_server.url, replicas=2, call_setup_timeout_seconds=0.5, call_sweep_seconds=60
    ) as runtimes:
        call_ids = [(await caller.start(callee_id))[0] for _ in range(5)]
        for _ in call_ids:
            await callee.event("call_incoming")
        sweepers = [sweeper_of(r) for r in runtimes]
        await eventually(
            _async(lambda: all(len(s.index) >= len(call_ids) for s in sweepers)),
            what="the calls in both indexes",
        )
        await asyncio.sleep(0.6)
        ended = await asyncio.gather(*(s.sweep() for s in sweepers))
        assert sum(ended) == len(call_ids), ended
        heard = [(await caller.ended(C.CALL_END_CAUSE_TIMEOUT)).call_id for _ in call_ids]
        assert sorted(heard) == sorted(call_ids)
        for _ in call_ids:
            await callee.ended(C.CALL_END_CAUSE_TIMEOUT)
        await caller.quiet("call_ended", 0.5)
        assert await asyncio.gather(*(s.sweep() for s in sweepers)) == [0, 0]


@bounded(30)
async def test_an_answered_call_ends_when_a_party_is_gone_for_good(
    people: People[Device], nats_server: EmbeddedNats, app: App
) -> None:
    caller_id, callee_id = _user("uma"), _user("vic")
    caller = await people.device(caller_id, listening=False)
    callee = await people.device(callee_id, gateway=1)
    async with calls_service(
        nats_server.url, call_party_check_seconds=0.2, call_sweep_seconds=0.1
    ) as (runtime,):
        call_id, _ = await caller.start(callee_id)
        await callee.event("call_incoming")
        await callee.answer(call_id)
        await caller.event("call_answered")
        # A dropped connection leaves a resumable session: the call goes on.
        await callee.raw.ws.close()
        await asyncio.sleep(1.5)
        record = await _record(runtime, app, call_id)
        assert record is not None and record.phase == C.CALL_PHASE_ANSWERED
        # A session that said goodbye is gone for good.
        began = time.monotonic()
        await caller.goodbye()

        async def failed() -> bool:
            found = await _record(runtime, app, call_id)
            return found is not None and found.end_cause == C.CALL_END_CAUSE_FAILURE

        await eventually(failed, timeout=5, what="the call ended as a failure")
        assert time.monotonic() - began < 3


@bounded(90)
async def test_an_answered_call_survives_a_nats_restart_and_sweeping_goes_on(
    own_nats: EmbeddedNats, database_url: str
) -> None:
    stack = await start_stack(own_nats.url, database_url, gateways=1)
    app = await stack.create_app()
    people = People(stack, app, Device)
    try:
        caller_id, callee_id, offline_id = _user("wes"), _user("xia"), _user("yul")
        caller = await people.device(caller_id, listening=False)
        callee = await people.device(callee_id)
        await stack.register(app, offline_id)
        async with calls_service(
            own_nats.url,
            call_ringing_timeout_seconds=2.0,
            call_sweep_seconds=0.1,
            asset_check_seconds=0.5,
        ) as (runtime,):
            call_id, _ = await caller.start(callee_id)
            await callee.event("call_incoming")
            await callee.answer(call_id)
            await caller.event("call_answered")
            restorations = runtime.assets.restorations

            assert own_nats.kill()
            await asyncio.sleep(0.5)
            await own_nats.start()  # same port, same store

            async def restored() -> bool:
                return (
                    runtime.assets.restorations > restorations
                    and sweeper_of(runtime).synced.is_set()
                    and runtime.nc.is_connected
                )

            await eventually(restored, timeout=20, what="the calls service restored")
            record = await _record(runtime, app, call_id)
            assert record is not None and record.phase == C.CALL_PHASE_ANSWERED
            key = subjects.call_key(app.key, call_id)
            await eventually(
                _async(lambda: key in sweeper_of(runtime).index), what="the call indexed again"
            )
            # The sweeper works on: a call to a callee with no device rings out.
            later, started = await _retrying(lambda: caller.start(offline_id))
            assert started.devices_reached == 0

            async def rung_out() -> bool:
                found = await _record(runtime, app, later)
                return found is not None and found.end_cause == C.CALL_END_CAUSE_NO_ANSWER

            await eventually(rung_out, timeout=10, what="the later call ended NO_ANSWER")
            # And the answered call is still there to hang up.
            await caller.hang_up(call_id)
            await callee.ended(C.CALL_END_CAUSE_HUNG_UP, timeout=10)
    finally:
        await people.close()
        await stack.close()


def _async(check: Any) -> Any:
    async def run() -> bool:
        return bool(check())

    return run


async def _retrying(action: Any, attempts: int = 20) -> Any:
    """Retry a request answered UNAVAILABLE while the services reconnect."""
    for _ in range(attempts - 1):
        try:
            return await action()
        except AssertionError as exc:
            if "UNAVAILABLE" not in str(exc) and "TIMEOUT" not in str(exc):
                raise
        await asyncio.sleep(0.5)
    return await action()


# -- remote legs: calls to phones and SIP addresses -------------------------------------


class FarSide:
    """Stands where the sip service would (parley.call.dial.sip): takes or refuses each
    DialRequest, reports as the leg, and hears the leg's events. The sip service itself is
    tested end to end (tests/e2e/test_sip.py); this checks the calls service's half."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.bus = Bus(nc, "sip")
        self.dialled: list[C.CallRecord] = []
        self.refusal: ParleyError | None = None
        self.events: asyncio.Queue[C.LegEvent] = asyncio.Queue()
        self.bus.endpoint(subjects.call_dial("sip"), C.DialRequest, self._dial, "sip")

    async def _dial(self, request: C.DialRequest) -> C.DialReply:
        if self.refusal is not None:
            raise self.refusal
        self.dialled.append(request.call)
        await self.listen(request.call.application_key, request.call.call_id)
        return C.DialReply(replica_id="far-side")

    async def listen(self, app_key: str, call_id: str) -> None:
        """Hear the events of the leg of this call (as the leg's replica subscribes)."""
        sub = await self.nc.subscribe(subjects.call_leg(app_key, call_id))

        async def pump() -> None:
            async for msg in sub.messages:
                await self.events.put(C.LegEvent.FromString(msg.data))

        asyncio.get_running_loop().create_task(pump())

    async def report(self, app: App, **report: Any) -> C.CallAck:
        return await bus_request(
            self.nc,
            subjects.CALLS_LEG_REPORTS,
            C.LegReport(application_key=app.key, **report),
            C.CallAck,
        )

    async def event(self, timeout: float = 5.0) -> C.LegEvent:
        return await asyncio.wait_for(self.events.get(), timeout)


@pytest_asyncio.fixture
async def far_side(bus: NATS) -> AsyncIterator[FarSide]:
    side = FarSide(bus)
    await side.bus.serve()
    try:
        yield side
    finally:
        await side.bus.stop_serving()


async def test_a_phone_call_is_dialled_and_its_leg_rings_answers_signals_and_hears_the_end(
    people: People[Device], calls: rt.Runtime, app: App, far_side: FarSide
) -> None:
    caller = await people.device(_user("pat"), listening=False)
    call_id = str(uuid.uuid4())
    reply = await caller.ok(
        start_call=C.StartCall(
            call_id=call_id, phone_number="+14155550101", offer_sdp=OFFER, headers={"x-a": "1"}
        )
    )
    assert reply.start_call_reply.devices_reached == 1  # the leg
    (dialled,) = far_side.dialled
    assert (dialled.call_id, dialled.kind, dialled.destination) == (
        call_id,
        C.CALL_KIND_PHONE,
        "+14155550101",
    )
    assert dialled.callee_user_id == "" and dialled.offer_sdp == OFFER
    assert dict(dialled.headers) == {"x-a": "1"}

    assert (await far_side.report(app, ring=C.RingCall(call_id=call_id))).phase == (
        C.CALL_PHASE_RINGING
    )
    await caller.event("call_progressing")
    answer = C.AnswerCall(call_id=call_id, answer_sdp=ANSWER)
    assert (await far_side.report(app, answer=answer)).phase == C.CALL_PHASE_ANSWERED
    assert (await caller.event("call_answered")).call_answered.answer_sdp == ANSWER

    # DTMF both ways: the caller's goes to the leg, the leg's to the caller.
    await caller.signal(call_id, dtmf="12#")
    heard = await far_side.event()
    assert heard.call_signal_received.signal.dtmf == "12#"
    signal = C.SendCallSignal(call_id=call_id, signal=C.CallSignal(dtmf="9"))
    await far_side.report(app, signal=signal)
    received = (await caller.event("call_signal_received")).call_signal_received
    assert received.signal.dtmf == "9"

    await caller.hang_up(call_id)
    ended = await far_side.event()
    assert ended.call_ended.cause == C.CALL_END_CAUSE_HUNG_UP


async def test_a_sip_error_before_the_answer_fails_the_call_and_busy_declines_it(
    people: People[Device], calls: rt.Runtime, app: App, far_side: FarSide
) -> None:
    caller = await people.device(_user("quin"), listening=False)
    for status, reason, failure, cause in (
        (404, "404 Not Found", True, C.CALL_END_CAUSE_FAILURE),
        (486, "486 Busy Here", False, C.CALL_END_CAUSE_DENIED),
    ):
        call_id = str(uuid.uuid4())
        await caller.ok(
            start_call=C.StartCall(call_id=call_id, sip_uri="bob@127.0.0.1", offer_sdp=OFFER)
        )
        assert far_side.dialled[-1].kind == C.CALL_KIND_SIP
        error = common_pb2.Error(code=E.ERROR_CODE_SIP, reason=reason, sip_status=status)
        hangup = C.HangupCall(call_id=call_id, error=error)
        if failure:
            hangup.cause = C.CALL_END_CAUSE_FAILURE
        assert (await far_side.report(app, hangup=hangup)).phase == C.CALL_PHASE_ENDED
        ended = await caller.ended(cause)
        assert (ended.error.code, ended.error.sip_status, ended.error.reason) == (
            E.ERROR_CODE_SIP,
            status,
            reason,
        )
    # A leg may not claim a cause only devices see (INACTIVE), nor act on an app call.
    call_id = str(uuid.uuid4())
    await caller.ok(start_call=C.StartCall(call_id=call_id, sip_uri="b@h", offer_sdp=OFFER))
    with pytest.raises(ParleyError) as caught:
        inactive = C.HangupCall(call_id=call_id, cause=C.CALL_END_CAUSE_INACTIVE)
        await far_side.report(app, hangup=inactive)
    assert caught.value.code == E.ERROR_CODE_INVALID_ARGUMENT
    callee_id = _user("rex")
    await people.device(callee_id)
    app_call, _ = await caller.start(callee_id)
    with pytest.raises(ParleyError) as caught:
        await far_side.report(app, ring=C.RingCall(call_id=app_call))
    assert caught.value.code == E.ERROR_CODE_PERMISSION_DENIED


async def test_a_refused_dial_fails_the_start_with_the_far_sides_error(
    people: People[Device], calls: rt.Runtime, app: App, far_side: FarSide
) -> None:
    caller = await people.device(_user("sal"), listening=False)
    far_side.refusal = ParleyError(
        E.ERROR_CODE_INSUFFICIENT_CREDIT, "not enough credit: one minute costs 1.20"
    )
    call_id = str(uuid.uuid4())
    error = await caller.refused(
        E.ERROR_CODE_INSUFFICIENT_CREDIT,
        start_call=C.StartCall(call_id=call_id, phone_number="+14155550101", offer_sdp=OFFER),
    )
    assert error.reason == "not enough credit: one minute costs 1.20"
    record = await _record(calls, app, call_id)
    assert record is not None and record.end_cause == C.CALL_END_CAUSE_FAILURE
    # Bad destinations are refused before anything is dialled.
    for fields, code, field in (
        ({"phone_number": "+1 415"}, E.ERROR_CODE_INVALID_PHONE_NUMBER, "phone_number"),
        ({"sip_uri": "nobody"}, E.ERROR_CODE_INVALID_ARGUMENT, "sip_uri"),
        ({"sip_uri": "b@h", "headers": {"topic": "x"}}, E.ERROR_CODE_INVALID_HEADER, "headers"),
        (
            {"sip_uri": "b@h", "phone_number": "+14155550101"},
            E.ERROR_CODE_INVALID_ARGUMENT,
            "callee_user_id",
        ),
    ):
        start = C.StartCall(call_id=str(uuid.uuid4()), offer_sdp=OFFER, **fields)
        assert (await caller.refused(code, start_call=start)).field == field


async def test_a_phone_calling_in_rings_the_users_devices_and_the_leg_hears_the_answer(
    people: People[Device], calls: rt.Runtime, app: App, far_side: FarSide
) -> None:
    callee_id = _user("tia")
    phone = await people.device(callee_id)
    call_id = str(uuid.uuid4())
    await far_side.listen(app.key, call_id)
    incoming = C.LegIncoming(
        call_id=call_id,
        callee_user_id=callee_id,
        from_number="+15551230000",
        headers={"x-trunk": "a"},
        offer_sdp=OFFER,
    )
    assert (await far_side.report(app, incoming=incoming)).phase == C.CALL_PHASE_INITIATING
    # A retry of the same call is the same call.
    assert (await far_side.report(app, incoming=incoming)).phase == C.CALL_PHASE_INITIATING
    offered = (await phone.event("call_incoming")).call_incoming
    assert (offered.caller_user_id, offered.kind, dict(offered.headers)) == (
        "+15551230000",
        C.CALL_KIND_PHONE,
        {"x-trunk": "a"},
    )
    await phone.quiet("call_incoming", 0.3)  # once
    await phone.ring(call_id)
    assert (await far_side.event()).WhichOneof("event") == "call_progressing"
    await phone.answer(call_id)
    answered = await far_side.event()
    assert answered.call_answered.answer_sdp == ANSWER
    # DTMF from the device reaches the leg; the phone hangs up: the device hears it.
    await phone.signal(call_id, dtmf="7")
    assert (await far_side.event()).call_signal_received.signal.dtmf == "7"
    ack = await far_side.report(app, hangup=C.HangupCall(call_id=call_id))
    assert ack.phase == C.CALL_PHASE_ENDED
    await phone.ended(C.CALL_END_CAUSE_HUNG_UP)
    # A user who never registered cannot be called in to.
    with pytest.raises(ParleyError) as caught:
        nobody = C.LegIncoming(
            call_id=str(uuid.uuid4()),
            callee_user_id=_user("nobody"),
            from_number="+15551230000",
            offer_sdp=OFFER,
        )
        await far_side.report(app, incoming=nobody)
    assert caught.value.code == E.ERROR_CODE_NOT_FOUND
