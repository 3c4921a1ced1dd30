"""Session resume: numbered events reach features once and in order across reconnects, the
acks the client sends, and what a refused resume or a takeover leads to."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import pytest

from parley_client import Connected, ErrorType, ParleyError, ResumeStats
from parley_client.acks import ACK_DELAY, ACK_PING_SPACING
from parley_protocol import framing
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.pb import client as pb
from parley_protocol.pb import echo
from parley_protocol.pb import presence as presence_pb
from tests.unit.client_double import FakeWindow, FrameFeature, Harness, harness, wait_until
from tests.unit.test_client_features import Notes


def _event(text: str) -> pb.Envelope:
    return pb.Envelope(echo_event=echo.EchoEvent(text=text))


def _presence(user_id: str) -> pb.Envelope:
    envelope = pb.Envelope(presence_result=presence_pb.PresenceResult())
    envelope.presence_result.users.add(user_id=user_id, online=True, devices=1)
    return envelope


def _window(h: Harness, session_id: str | None) -> FakeWindow:
    assert session_id is not None
    return h.backend.sessions[session_id]


def _hello(h: Harness, gateway: int, connection: int) -> pb.Hello:
    hello = h.gateways[gateway].sessions[connection].hello
    assert hello is not None
    return hello


async def test_events_arrive_once_and_in_order_across_a_gateway_death(tmp_path: Path) -> None:
    async with harness(tmp_path, gateways=2) as h:
        h.backend.windows = True
        client, recorder = h.client()
        handled: list[str] = []

        async def slowly(envelope: pb.Envelope) -> None:
            await asyncio.sleep(0.004)  # slower than the events come: some wait at the drop
            handled.append(envelope.echo_event.text)

        notes = Notes("connections", ("error",))  # hears the connections only
        client.add_feature(notes)
        client.add_feature(FrameFeature("events", ["echo_event"], slowly))
        await client.start()
        first = client.session_id
        assert client.gateway_id == "gw-1"

        texts = [f"event-{index:03d}" for index in range(150)]

        async def steadily() -> None:
            for text in texts:
                [number] = await h.backend.push("alice", _event(text))
                assert number > 0
                await asyncio.sleep(0.002)

        pusher = asyncio.create_task(steadily())
        await wait_until(lambda: len(handled) >= 20)
        await h.gateways[0].kill()
        await asyncio.wait_for(pusher, 10)
        await wait_until(lambda: len(handled) >= len(texts), timeout=10)
        await asyncio.sleep(0.1)  # nothing comes after the last one
        assert handled == texts
        assert client.session_id == first and client.gateway_id == "gw-2"
        assert notes.connections[1] == Connected(
            reconnected=True, resumed=True, session_id=first or "", gateway_id="gw-2"
        )
        window = _window(h, first)
        hello = _hello(h, 1, 0)
        assert hello.resume_session_id == first
        assert 0 < hello.resume_from_event < window.numbers()[-1]
        assert client.resume_stats.resumed == 1
        assert client.resume_stats.fresh_after_failed_resume == 0
        assert window.replayed  # what came while it was away, and what it had not handled
        assert client.resume_stats.duplicates_dropped <= len(window.replayed)
        await wait_until(lambda: window.acked == window.numbers()[-1], timeout=3)
        assert recorder.logged(f"session {first} resumed after event {hello.resume_from_event}")
        assert not recorder.failed


async def test_replayed_events_received_already_are_dropped(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.backend.windows = True
        h.backend.replay_before = 1  # the gateway sends one handled event again, too
        gateway = h.gateways[0]
        client, _ = h.client()
        release = asyncio.Event()
        heard: list[str] = []
        others: list[str] = []

        async def blocking(envelope: pb.Envelope) -> None:
            text = envelope.echo_event.text
            if text == "event-2":
                await release.wait()
            heard.append(text)

        client.add_feature(FrameFeature("events", ["echo_event"], blocking))
        client.add_feature(
            FrameFeature(
                "presence",
                ["presence_result"],
                lambda e: others.append(e.presence_result.users[0].user_id),
            )
        )
        await client.start()
        session_id = client.session_id
        numbers = []
        for index in range(1, 6):
            numbers += await h.backend.push("alice", _event(f"event-{index}"))
        numbers += await h.backend.push("alice", _presence("bob"))
        await wait_until(lambda: others == ["bob"])  # so events 1-5 were received, too
        assert heard == ["event-1"]

        await gateway.drop_all(code=1001)
        await wait_until(lambda: len(gateway.sessions) == 2)
        await client.wait_connected(5)
        assert client.session_id == session_id
        hello = _hello(h, 0, 1)
        assert (hello.resume_session_id, hello.resume_from_event) == (session_id, numbers[0])
        window = _window(h, session_id)
        assert window.replayed == numbers  # event-1 (one before the ack), then all it acks not
        numbers += await h.backend.push("alice", _event("event-6"))
        release.set()
        await wait_until(lambda: len(heard) == 6)
        await asyncio.sleep(0.1)
        assert heard == [f"event-{index}" for index in range(1, 7)]
        assert others == ["bob"]
        assert client.resume_stats == ResumeStats(resumed=1, duplicates_dropped=len(numbers) - 1)
        await wait_until(lambda: window.acked == numbers[-1], timeout=3)


async def test_the_ack_moves_only_over_handled_events(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.backend.windows = True
        client, _ = h.client(h.builder().heartbeat_interval(0.05))
        release = asyncio.Event()
        blocked = asyncio.Event()
        others: list[str] = []

        async def block(envelope: pb.Envelope) -> None:
            if envelope.echo_event.text == "block":
                blocked.set()
                await release.wait()

        client.add_feature(FrameFeature("slow", ["echo_event"], block))
        client.add_feature(
            FrameFeature(
                "fast",
                ["presence_result"],
                lambda e: others.append(e.presence_result.users[0].user_id),
            )
        )
        await client.start()
        window = _window(h, client.session_id)
        [before] = await h.backend.push("alice", _event("before"))
        [stuck] = await h.backend.push("alice", _event("block"))
        after = [(await h.backend.push("alice", _presence(f"user-{i}")))[0] for i in range(4)]
        await asyncio.wait_for(blocked.wait(), 2)
        await wait_until(lambda: len(others) == 4)  # handled, after the blocked one
        pings = len(window.acks)
        await wait_until(lambda: len(window.acks) >= pings + 5, timeout=3)
        assert window.acked == before < stuck < after[0]  # the blocked event holds it back

        release.set()
        await wait_until(lambda: window.acked == after[-1], timeout=3)
        assert window.acks == sorted(window.acks)  # never goes back


async def test_the_ack_rides_on_every_frame_and_an_idle_client_sends_it_within_a_second(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:  # heartbeats every 20 s: the client sends nothing
        h.backend.windows = True
        client, _ = h.client()
        notes = Notes()
        client.add_feature(notes)
        await client.start()
        session = h.gateways[0].sessions[0]
        window = _window(h, client.session_id)
        assert session.frames[0].ack == 0  # the Hello's own

        sent_at = time.monotonic()
        [number] = await h.backend.push("alice", _event("event-1"))
        await wait_until(lambda: window.acked == number, timeout=3)
        assert time.monotonic() - sent_at < ACK_DELAY + 0.5
        assert session.bodies()[-1] == "ping" and session.frames[-1].ack == number

        # Events no feature takes, and an Error the client only logs, count as handled.
        await h.backend.push("alice", _presence("bob"))
        denied = ProtocolError(ErrorCode.ERROR_CODE_PERMISSION_DENIED, "not now")
        [number] = await h.backend.push("alice", framing.error_envelope(denied))
        await wait_until(lambda: window.acked == number, timeout=3)

        await client.presence(["bob"])  # any frame carries the ack
        assert session.bodies()[-1] == "presence_query" and session.frames[-1].ack == number

        # A steady stream: the gateway's view stays about a second behind at most, for at
        # most one Ping a second.
        pings = session.bodies().count("ping")
        numbers: list[tuple[float, int]] = []
        stale: list[float] = []
        began = time.monotonic()
        while time.monotonic() - began < 3:
            [number] = await h.backend.push("alice", _event("event-x"))
            now = time.monotonic()
            numbers.append((now, number))
            due = [n for at, n in numbers if at < now - (ACK_DELAY + ACK_PING_SPACING + 0.3)]
            if due and window.acked < due[-1]:
                stale.append(now)
            await asyncio.sleep(0.02)
        assert stale == []
        extra = session.bodies().count("ping") - pings
        assert 2 <= extra <= 3 / ACK_PING_SPACING + 1
        await wait_until(lambda: window.acked == numbers[-1][1], timeout=3)


async def test_a_resumed_session_keeps_its_id_and_features_hear_it_was_resumed(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        h.backend.windows = True
        client, _ = h.client()
        notes = Notes()
        client.add_feature(notes)
        await client.start()
        first = client.session_id
        assert (_hello(h, 0, 0).resume_session_id, _hello(h, 0, 0).resume_from_event) == ("", 0)
        await h.backend.push("alice", _event("event-1"))
        await wait_until(lambda: notes.frames() == ["event-1"])
        await h.gateways[0].drop_all(code=1001)
        await wait_until(lambda: len(notes.connections) == 2)
        assert notes.heard == ["connected", "event-1", "down:UNAVAILABLE", "reconnected"]
        assert notes.connections[1] == Connected(
            reconnected=True, resumed=True, session_id=first or "", gateway_id="gw-1"
        )
        assert client.session_id == first
        await h.backend.push("alice", _event("event-2"))
        await wait_until(lambda: notes.frames() == ["event-1", "event-2"])
        assert client.resume_stats == ResumeStats(resumed=1)


@pytest.mark.parametrize("outcome", ["EXPIRED", "DISABLED", "REFUSED", "UNSPECIFIED"])
async def test_a_resume_not_honoured_starts_a_new_session(tmp_path: Path, outcome: str) -> None:
    async with harness(tmp_path) as h:
        backend = h.backend
        backend.windows = True
        client, recorder = h.client()
        notes = Notes()
        client.add_feature(notes)
        await client.start()
        first = client.session_id
        [number] = await backend.push("alice", _event("event-1"))
        await wait_until(lambda: _window(h, first).acked == number, timeout=3)

        reason = "no such session"
        if outcome == "EXPIRED":  # the window let the session go
            backend.sessions.clear()
        elif outcome == "DISABLED":  # a deployment without a window: no numbers either
            backend.windows = False
            reason = "no resume window here"
        else:  # another user's session; or a gateway that does not know of resumes
            backend.resume_answer = pb.ResumeOutcome.Value(f"RESUME_OUTCOME_{outcome}")
            backend.resume_reason = reason = "" if outcome == "UNSPECIFIED" else "not yours"
        await h.gateways[0].drop_all(code=1001)
        await wait_until(lambda: len(notes.connections) == 2)
        second = notes.connections[1]
        assert second == Connected(
            reconnected=True,
            resumed=False,
            session_id=client.session_id or "",
            gateway_id="gw-1",
        )
        assert second.session_id != first
        hello = _hello(h, 0, 1)
        assert (hello.resume_session_id, hello.resume_from_event) == (first, number)
        assert client.resume_stats == ResumeStats(fresh_after_failed_resume=1)
        [(level, _, message)] = [log for log in recorder.logs if "was not resumed" in log[2]]
        assert level == logging.INFO and f"({outcome}" in message and reason in message

        # The client goes on in its new session, whose events are numbered afresh.
        more = await backend.push("alice", _event("event-2"))
        if not backend.windows:
            await h.gateways[0].push_echo_event("event-2")
        await wait_until(lambda: notes.frames() == ["event-1", "event-2"])
        if backend.windows:
            await wait_until(lambda: _window(h, client.session_id).acked == more[0], timeout=3)
        assert client.is_started and not recorder.failed


async def test_a_session_taken_over_by_another_connection_starts_afresh(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.backend.windows = True
        client, recorder = h.client()
        notes = Notes()
        client.add_feature(notes)
        await client.start()
        first = client.session_id
        assert first is not None
        device = next(iter(h.backend.devices.values()))

        # Another connection resumes this client's session; the client's is closed with 4409.
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"ws://{h.gateways[0].host}/v1/connect") as ws,
        ):
            hello = pb.Hello(
                access_token=h.backend.issue(device).token,
                application_key=h.backend.application_key,
                user_id="alice",
                resume_session_id=first,
            )
            await ws.send_bytes(framing.encode(pb.Envelope(seq=1, hello=hello)))
            welcome = framing.decode((await ws.receive()).data).welcome
            assert (welcome.resume, welcome.session_id) == (pb.RESUME_OUTCOME_RESUMED, first)
            await wait_until(lambda: len(notes.connections) == 2)
            await client.wait_connected(5)
            assert recorder.logged("(close code 4409)")
            assert recorder.logged(f"session {first} was resumed on another connection")
            hello_again = _hello(h, 0, 2)
            assert (hello_again.resume_session_id, hello_again.resume_from_event) == ("", 0)
            assert notes.connections[1].session_id == client.session_id != first
            assert not notes.connections[1].resumed and notes.connections[1].reconnected
            assert h.backend.sessions[first].connection is not None  # still the other one's

        # An Error frame before a 4409 does not make it fatal.
        second = client.session_id
        denied = ProtocolError(ErrorCode.ERROR_CODE_PERMISSION_DENIED, "not here")
        await h.gateways[0].send_to_all(framing.error_envelope(denied))
        await h.gateways[0].drop_all(code=framing.CLOSE_TAKEN_OVER)
        await wait_until(lambda: len(notes.connections) == 3)
        await client.wait_connected(5)
        assert client.session_id not in (first, second)
        assert _hello(h, 0, 3).resume_session_id == ""
        assert client.resume_stats == ResumeStats()
        assert not recorder.failed


async def test_requests_in_flight_at_a_drop_fail_with_a_network_error(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.backend.windows = True
        gateway = h.gateways[0]
        client, recorder = h.client()
        await client.start()
        first = client.session_id
        gateway.presence_delay = 0.5
        pending = asyncio.create_task(client.presence(["bob"]))
        await wait_until(lambda: "presence_query" in gateway.sessions[0].bodies())
        await gateway.drop_all(code=1001)
        with pytest.raises(ParleyError) as caught:
            await pending
        assert caught.value.type is ErrorType.NETWORK
        assert "closed before the reply came" in caught.value.message
        await wait_until(lambda: len(gateway.sessions) == 2)
        await client.wait_connected(5)
        assert client.session_id == first  # resumed, yet the request is not answered twice
        gateway.presence_delay = 0
        assert (await client.presence(["bob"]))["bob"].online is False
        assert not recorder.failed
