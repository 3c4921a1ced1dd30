"""Conference calls end to end: reference clients, auth, gateways, the calls and conference
services as processes, real NATS and PostgreSQL, real WebRTC (aiortc) between each client
and the conference replica that holds its room, and the application's REST API."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import numpy as np
import pytest
import pytest_asyncio

from parley.v1 import conference_pb2
from parley_client import (
    Call,
    CallEndCause,
    CallKind,
    CallListener,
    ConferenceEvent,
    ParleyError,
    Participant,
    ParticipantChange,
)
from parley_client.backend import BackendClient
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_protocol import subjects
from tests.support.calls import Party
from tests.support.media import SAMPLE_RATE, dominant_hz, received_audio, rms
from tests.support.sip.phone_process import PhoneProcess
from tests.support.wire import bounded, eventually

from .stack import E2EStack, calling_party, conference_def, running_stack, sip_def

# A participant silent on the network this long is removed (short, for the test).
MEDIA_TIMEOUT = 3
TONES = (300.0, 500.0, 700.0)
TEST_NUMBER = "+46000000000"

_numbers = itertools.count()


def odd(name: str) -> str:
    """A fresh ID per test holding a space, a dot, `*` and `>`."""
    return f"{name} {next(_numbers)}.x*>"


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: EmbeddedNats,
    postgres_server: EmbeddedPostgres,
) -> AsyncIterator[E2EStack]:
    env = {"PARLEY_CONFERENCE_MEDIA_TIMEOUT_SECONDS": str(MEDIA_TIMEOUT)}
    async with running_stack(
        tmp_path_factory.mktemp("conference"),
        nats_server.url,
        postgres_server,
        gateways=("gateway-a", "gateway-b"),
        extra=[
            *(
                conference_def({**env, "PARLEY_INSTANCE_ID": name}, name)
                for name in ("conference-a", "conference-b")
            ),
            sip_def(),  # phones called into rooms (the test number needs no trunk)
        ],
    ) as running:
        yield running


@pytest_asyncio.fixture
async def backend(stack: E2EStack) -> AsyncIterator[BackendClient]:
    client = BackendClient(stack.http("gateway-a"), stack.app_key, stack.app_secret)
    try:
        yield client
    finally:
        await client.close()


class RoomEvents(CallListener):
    def __init__(self) -> None:
        self.events: list[ConferenceEvent] = []

    def on_conference_changed(self, call: Call, event: ConferenceEvent) -> None:
        self.events.append(event)


@contextlib.asynccontextmanager
async def participant(
    stack: E2EStack, name: str, state: Path, tone: float, gateway: str = "gateway-a"
) -> AsyncIterator[Party]:
    calling = await calling_party(stack, odd(name), state / name, [gateway], tone=tone)
    try:
        yield calling
    finally:
        await calling.client.terminate()


async def join(party: Party, room: str) -> tuple[Call, RoomEvents]:
    call = party.calls.call_conference(room)
    party.follow(call)
    events = RoomEvents()
    call.add_call_listener(events)
    await call.wait_established(15)
    return call, events


async def until_listed(call: Call, call_id: str, timeout: float, what: str) -> Participant:
    """The participant of call `call_id` once the room's list (as `call` hears it) has it."""

    async def listed() -> bool:
        return any(p.call_id == call_id for p in call.participants)

    await eventually(listed, timeout, what)
    (found,) = [p for p in call.participants if p.call_id == call_id]
    return found


async def until_gone(call: Call, call_id: str, timeout: float, what: str) -> None:
    async def gone() -> bool:
        return not any(p.call_id == call_id for p in call.participants)

    await eventually(gone, timeout, what)


def changes_of(events: RoomEvents, call_id: str) -> list[ParticipantChange]:
    """What the room heard of one participant, in order."""
    return [e.change for e in events.events if e.participant.call_id == call_id]


async def until_heard_left(events: RoomEvents, call_id: str, what: str) -> None:
    """Until the listener was told that the participant of `call_id` left (the call's list
    changes first; its listeners are told right after)."""

    async def heard() -> bool:
        return ParticipantChange.LEFT in changes_of(events, call_id)

    await eventually(heard, 5, what)


def level(samples: np.ndarray[Any, np.dtype[np.float64]], hz: float) -> float:
    """The spectrum's magnitude around `hz` (±15 Hz), per sample."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) / len(samples)
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    return float(spectrum[(freqs > hz - 15) & (freqs < hz + 15)].max())


async def tones_heard(call: Call, seconds: float = 1.5) -> dict[float, float]:
    samples = await received_audio(call, seconds)
    return {hz: level(samples, hz) for hz in TONES}


def hears(levels: dict[float, float], present: set[float]) -> bool:
    """The tones in `present` stand well above every other one."""
    quiet = max((v for hz, v in levels.items() if hz not in present), default=0.0)
    return all(levels[hz] > 8 * max(quiet, 1e-5) for hz in present)


async def until_hears(call: Call, present: set[float], timeout: float = 10.0) -> dict[float, float]:
    """Listen until exactly the tones in `present` are heard (the mixer's view can lag a
    command by a frame or two); the last levels, for the assertion's message."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    levels = await tones_heard(call)
    while not hears(levels, present) and loop.time() < end:
        levels = await tones_heard(call)
    return levels


@bounded(90)
async def test_three_participants_each_hear_the_other_two_and_not_themselves(
    stack: E2EStack, tmp_path: Path, backend: BackendClient
) -> None:
    room = odd("room")
    async with (
        participant(stack, "ann", tmp_path, TONES[0]) as ann,
        participant(stack, "bob", tmp_path, TONES[1], "gateway-b") as bob,
        participant(stack, "cy", tmp_path, TONES[2]) as cy,
    ):
        joined = [await join(p, room) for p in (ann, bob, cy)]
        calls = [c for c, _ in joined]
        assert all(c.kind is CallKind.CONFERENCE and c.remote_user_id == room for c in calls)
        for call, tone in zip(calls, TONES, strict=True):
            others = set(TONES) - {tone}
            levels = await until_hears(call, others)
            assert hears(levels, others), (tone, levels)

        # Everyone learnt the room: three users, each listed once, none muted.
        users = {p.client.user_id for p in (ann, bob, cy)}

        async def all_listed() -> bool:
            return all({p.user_id for p in c.participants} == users for c in calls)

        await eventually(all_listed, 5, "the participant lists")
        ann_events = joined[0][1].events
        assert [e.change for e in ann_events][:1] == [ParticipantChange.JOINED]
        assert {e.participant.user_id for e in ann_events} >= users - {ann.client.user_id}

        # The application lists the same three, with their call ids.
        listed = await backend.conference(room)
        assert {p.call_id for p in listed} == {c.call_id for c in calls}
        assert {p.user_id for p in listed} == users
        assert not any(p.muted for p in listed)

        # Bob leaves: the others hear it and carry on with each other.
        await calls[1].hangup()
        await calls[1].wait_ended(5)

        await until_gone(calls[0], calls[1].call_id, 5, "bob's leave")
        await until_heard_left(joined[0][1], calls[1].call_id, "bob's leave told")
        assert len(calls[0].participants) == 2
        levels = await until_hears(calls[0], {TONES[2]})
        assert hears(levels, {TONES[2]}), levels
        for call in (calls[0], calls[2]):
            await call.hangup()
    # The room ended with its last participant: the application finds nobody.
    with pytest.raises(ParleyError) as refused:
        await backend.conference(room)
    assert "NOT_FOUND" in str(refused.value.code)


@bounded(90)
async def test_a_room_that_ended_opens_again_under_the_same_id(
    stack: E2EStack, tmp_path: Path, backend: BackendClient
) -> None:
    """A conference id is used again (a daily stand-up): after its room ended with its last
    participant, joining it opens a new room, and the two hear each other again."""
    room = odd("stand-up")

    async def room_over() -> bool:
        try:
            await backend.conference(room)
        except ParleyError as exc:
            return "NOT_FOUND" in str(exc.code)
        return False

    async with (
        participant(stack, "dee", tmp_path, TONES[0]) as dee,
        participant(stack, "eve", tmp_path, TONES[1], "gateway-b") as eve,
    ):
        for day in range(2):
            calls = [(await join(p, room))[0] for p in (dee, eve)]
            levels = await until_hears(calls[0], {TONES[1]})
            assert hears(levels, {TONES[1]}), (day, levels)
            for call in calls:
                await call.hangup()
                await call.wait_ended(5)
            await eventually(room_over, 10, f"the room of day {day} over")


@bounded(90)
async def test_the_application_mutes_unmutes_and_removes_participants(
    stack: E2EStack, tmp_path: Path, backend: BackendClient
) -> None:
    room = odd("board")
    async with (
        participant(stack, "dee", tmp_path, TONES[0]) as dee,
        participant(stack, "eve", tmp_path, TONES[1]) as eve,
        participant(stack, "fay", tmp_path, TONES[2], "gateway-b") as fay,
    ):
        (dee_call, _), (eve_call, eve_events), (fay_call, _) = [
            await join(p, room) for p in (dee, eve, fay)
        ]
        assert hears(await until_hears(eve_call, {TONES[0], TONES[2]}), {TONES[0], TONES[2]})

        # Muting dee silences dee for the others, and they hear that it happened.
        await backend.mute(room, dee_call.call_id)
        levels = await until_hears(eve_call, {TONES[2]})
        assert hears(levels, {TONES[2]}), levels
        assert any(
            e.change is ParticipantChange.MUTED and e.participant.call_id == dee_call.call_id
            for e in eve_events.events
        )
        assert [
            p.muted for p in await backend.conference(room) if p.call_id == dee_call.call_id
        ] == [True]
        # Dee, muted, still hears the others.
        assert hears(await until_hears(dee_call, {TONES[1], TONES[2]}), {TONES[1], TONES[2]})
        await backend.unmute(room, dee_call.call_id)
        levels = await until_hears(eve_call, {TONES[0], TONES[2]})
        assert hears(levels, {TONES[0], TONES[2]}), levels

        # A participant that is not there, or a bad command target, gets its own error.
        with pytest.raises(ParleyError) as missing:
            await backend.mute(room, "00000000-0000-4000-8000-000000000000")
        assert "NOT_FOUND" in str(missing.value.code)

        # Removing fay ends fay's call with REMOVED; the others go on.
        await backend.kick(room, fay_call.call_id)
        await fay_call.wait_ended(5)
        assert fay_call.details.end_cause is CallEndCause.REMOVED
        levels = await until_hears(eve_call, {TONES[0]})
        assert hears(levels, {TONES[0]}), levels
        assert {p.call_id for p in await backend.conference(room)} == {
            dee_call.call_id,
            eve_call.call_id,
        }

        # Removing everyone ends every call, and the room.
        await backend.kick_all(room)
        for call in (dee_call, eve_call):
            await call.wait_ended(5)
            assert call.details.end_cause is CallEndCause.REMOVED


@bounded(60)
async def test_one_room_lives_on_one_replica_whichever_gateway_and_replica_is_asked(
    stack: E2EStack, tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    room = odd("shared")
    async with (
        participant(stack, "gus", tmp_path, TONES[0], "gateway-a") as gus,
        participant(stack, "hal", tmp_path, TONES[1], "gateway-b") as hal,
        participant(stack, "ida", tmp_path, TONES[2], "gateway-b") as ida,
    ):
        for p in (gus, hal, ida):
            await join(p, room)
        nc = await nats.connect(nats_server.url)
        try:
            kv = await nc.jetstream().key_value(subjects.CONFERENCE_ROOMS_BUCKET)
            entry = await kv.get(subjects.conference_key(stack.app_key, room))
            holder = conference_pb2.RoomPlacement.FromString(entry.value or b"").replica_id
        finally:
            await nc.close()
        counts = await participants_per_replica(stack)
        # Every participant is on the replica the placement names, none on the other.
        assert counts[holder] == 3 and sum(counts.values()) == 3, (holder, counts)


async def participants_per_replica(stack: E2EStack) -> dict[str, int]:
    found: dict[str, int] = {}
    async with aiohttp.ClientSession() as http:
        for name in ("conference-a", "conference-b"):
            port = stack.devstack.ports[name].health
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
            found[name] = sum(
                int(float(line.split()[-1]))
                for line in text.splitlines()
                if line.startswith("parley_conference_legs_live{")
            )
    return found


@bounded(60)
async def test_a_participant_whose_network_drops_is_removed_and_the_others_carry_on(
    stack: E2EStack, tmp_path: Path
) -> None:
    room = odd("flaky")
    async with (
        participant(stack, "jo", tmp_path, TONES[0]) as jo,
        participant(stack, "kim", tmp_path, TONES[1]) as kim,
        participant(stack, "lee", tmp_path, TONES[2]) as lee,
    ):
        (jo_call, jo_events), (kim_call, _), (lee_call, _) = [
            await join(p, room) for p in (jo, kim, lee)
        ]
        cut_network(lee_call)
        await lee_call.wait_ended(MEDIA_TIMEOUT + 10)
        assert lee_call.details.end_cause is CallEndCause.FAILURE

        await until_gone(jo_call, lee_call.call_id, 5, "lee's removal")
        await until_heard_left(jo_events, lee_call.call_id, "lee's removal told")
        assert len(jo_call.participants) == 2
        assert hears(await until_hears(jo_call, {TONES[1]}), {TONES[1]})
        assert hears(await until_hears(kim_call, {TONES[0]}), {TONES[0]})


def cut_network(call: Call) -> None:
    """Nothing the call's client sends reaches the network any more (as when its network
    drops), while it still hears."""
    media = call._media  # the test reaches into the client on purpose
    assert media is not None
    pc = media.pc  # type: ignore[attr-defined]
    for transceiver in pc.getTransceivers():
        ice = transceiver.sender.transport.transport
        for protocol in ice._connection._protocols:
            protocol.transport.sendto = lambda *args, **kwargs: None


@bounded(30)
async def test_conference_ids_longer_than_64_characters_are_refused(
    stack: E2EStack, tmp_path: Path
) -> None:
    async with participant(stack, "max", tmp_path, TONES[0]) as p:
        with pytest.raises(ParleyError) as refused:
            p.calls.call_conference("r" * 65)
        assert "INVALID_CONFERENCE_ID" in str(refused.value.code)
        call = p.calls.call_conference("r" * 64)  # 64 is fine
        await call.wait_established(15)
        await call.hangup()


@bounded(60)
async def test_a_callout_rings_a_user_into_the_room(
    stack: E2EStack, tmp_path: Path, backend: BackendClient
) -> None:
    room = odd("callout")
    async with (
        participant(stack, "nan", tmp_path, TONES[0]) as nan,
        participant(stack, "oz", tmp_path, TONES[1], "gateway-b") as oz,
    ):
        nan_call, _ = await join(nan, room)
        call_id = await backend.callout_user(room, oz.client.user_id)
        incoming = await oz.next_incoming(timeout=10)
        assert (incoming.call_id, incoming.kind, incoming.remote_user_id) == (
            call_id,
            CallKind.CONFERENCE,
            room,
        )
        await incoming.answer()
        await incoming.wait_established(15)
        assert hears(await until_hears(incoming, {TONES[0]}), {TONES[0]})
        assert hears(await until_hears(nan_call, {TONES[1]}), {TONES[1]})
        listed = await backend.conference(room)
        assert {p.call_id for p in listed} == {nan_call.call_id, call_id}
        await incoming.hangup()
        await nan_call.hangup()


@bounded(60)
async def test_a_phone_called_into_the_room_is_heard_and_listed(
    stack: E2EStack, tmp_path: Path, backend: BackendClient
) -> None:
    """The test number, called into a room through the sip service: the participant hears
    its voice prompt, sees it join and leave (it hangs up by itself), and the application
    lists it by number while it is there."""
    room = odd("dial-in")
    async with participant(stack, "pia", tmp_path, TONES[0]) as pia:
        call, events = await join(pia, room)
        quiet = rms(await received_audio(call, 0.5))
        call_id = await backend.callout_number(room, TEST_NUMBER)

        phone = await until_listed(call, call_id, 15, "the phone's join")
        assert (phone.number, phone.user_id) == (TEST_NUMBER, "")
        listed = {p.call_id: p.cli for p in await backend.conference(room)}
        assert listed == {call.call_id: "", call_id: TEST_NUMBER}
        # The prompt is speech: loud, and not pia's own tone.
        heard = await received_audio(call, 2.0)
        assert rms(heard) > 10 * max(quiet, 1e-4), (rms(heard), quiet)
        assert level(heard, TONES[0]) < 0.2 * np.abs(heard).max()

        await until_gone(call, call_id, 20, "the test number hanging up")
        assert changes_of(events, call_id) == [ParticipantChange.JOINED, ParticipantChange.LEFT]
        await call.hangup()


@bounded(60)
async def test_a_sip_phone_called_into_the_room_hears_it_and_is_heard(
    stack: E2EStack, tmp_path: Path, backend: BackendClient
) -> None:
    """A pjsua2 phone called into a room by its SIP address: the participant hears the
    phone's 1000 Hz, and the phone hears the participant's tone through the mixer."""
    room = odd("sip-in")
    phone = PhoneProcess(
        "--answer",
        "--tone",
        "1000",
        "--warmup",
        "1.5",
        "--listen",
        "1.5",
        "--hangup",
        "--timeout",
        "30",
    )
    async with participant(stack, "ray", tmp_path, TONES[1]) as ray, phone:
        call, events = await join(ray, room)
        address = f"phone@127.0.0.1:{phone.port}"
        call_id = await backend.callout_sip(room, address, {"x-room": "sip-in"})

        listed = await until_listed(call, call_id, 15, "the SIP phone's join")
        assert (listed.number, listed.user_id) == (address, "")
        heard = await received_audio(call, 1.0)
        report = await phone.result(30)
        hz = dominant_hz(heard)
        print(f"\nthe participant hears {hz:.1f} Hz; the phone hears {report['freq']} Hz")
        assert abs(hz - 1000) <= 15 and rms(heard) > 0.02
        assert abs(report["freq"] - TONES[1]) <= 15

        await until_gone(call, call_id, 15, "the phone hanging up")
        assert changes_of(events, call_id) == [ParticipantChange.JOINED, ParticipantChange.LEFT]
        await call.hangup()
