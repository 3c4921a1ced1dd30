"""Features plugged into a client: their frames, connection notices, own tasks, and links."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from parley_client import Connected, ErrorType, Feature, FeatureLink, ParleyError
from parley_protocol import framing
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.pb import client as pb
from parley_protocol.pb import echo
from parley_protocol.pb import presence as presence_pb
from tests.unit.client_double import FrameFeature, harness, wait_until


class Notes(Feature):
    """Records what it hears, in order: "connected"/"reconnected", "down:<code>", frame texts."""

    def __init__(self, name: str = "notes", bodies: tuple[str, ...] = ("echo_event",)) -> None:
        self.name = name
        self.bodies = frozenset(bodies)
        self.heard: list[str] = []
        self.connections: list[Connected] = []
        self.reasons: list[ParleyError] = []
        self.links: list[FeatureLink] = []

    def attached(self, link: FeatureLink) -> None:
        self.links.append(link)

    @property
    def link(self) -> FeatureLink:
        [link] = self.links
        return link

    async def on_frame(self, envelope: pb.Envelope) -> None:
        self.heard.append(envelope.echo_event.text)

    async def on_connected(self, connected: Connected) -> None:
        self.connections.append(connected)
        self.heard.append("reconnected" if connected.reconnected else "connected")

    async def on_disconnected(self, reason: ParleyError) -> None:
        self.reasons.append(reason)
        self.heard.append(f"down:{reason.code}")

    def frames(self) -> list[str]:
        return [note for note in self.heard if note.startswith("event-")]


def _presence_push(user_id: str) -> pb.Envelope:
    envelope = pb.Envelope(presence_result=presence_pb.PresenceResult())
    envelope.presence_result.users.add(user_id=user_id, online=True, devices=1)
    return envelope


def _feature_tasks() -> set[asyncio.Task[object]]:
    """Feature tasks running in the loop (which tests of other tiers share: compare sets)."""
    return {
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("parley feature ") and not task.done()
    }


async def test_a_feature_receives_the_event_frames_of_its_bodies_in_order(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        gateway = h.gateways[0]
        gateway.before_welcome = [pb.Envelope(echo_event=echo.EchoEvent(text="event-early"))]
        client, _ = h.client()
        notes = Notes()
        client.add_feature(notes)
        await client.start()
        for index in range(20):
            await gateway.push_echo_event(f"event-{index:02d}")
        await gateway.send_to_all(_presence_push("bob"))  # not one of its bodies
        await gateway.push_echo_event("event-last")
        await wait_until(lambda: "event-last" in notes.heard)
        # The connection comes first, even before a frame that arrived ahead of its Welcome.
        assert notes.heard[0] == "connected"
        assert notes.frames() == ["event-early"] + [f"event-{i:02d}" for i in range(20)] + [
            "event-last"
        ]
        assert client.feature(Notes) is notes


async def test_a_blocked_feature_does_not_delay_another_features_frames(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        gateway = h.gateways[0]
        client, _ = h.client()
        blocked = asyncio.Event()
        released: list[str] = []

        async def block(envelope: pb.Envelope) -> None:
            blocked.set()
            await asyncio.sleep(3)
            released.append(envelope.presence_result.users[0].user_id)

        client.add_feature(FrameFeature("slow", ["presence_result"], block))
        fast = Notes("fast")
        client.add_feature(fast)
        await client.start()

        await gateway.send_to_all(_presence_push("first"))
        await gateway.send_to_all(_presence_push("second"))  # queued behind the blocked one
        await asyncio.wait_for(blocked.wait(), 2)
        sent_at = time.monotonic()
        await gateway.push_echo_event("event-fast")
        await wait_until(lambda: fast.frames() == ["event-fast"], timeout=2)
        assert time.monotonic() - sent_at < 0.5
        assert released == []  # the slow feature is still in its first frame

        await wait_until(lambda: released == ["first"], timeout=5)  # and goes on in order


async def test_a_raising_handler_is_logged_and_later_frames_still_arrive(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        received: list[str] = []

        def flaky(envelope: pb.Envelope) -> None:
            text = envelope.echo_event.text
            if text == "event-bad":
                raise RuntimeError("cannot handle this one")
            received.append(text)

        client.add_feature(FrameFeature("flaky", ["echo_event"], flaky))
        await client.start()
        for text in ("event-1", "event-bad", "event-2", "event-3"):
            await h.gateways[0].push_echo_event(text)
        await wait_until(lambda: received == ["event-1", "event-2", "event-3"])
        [(level, area, message)] = [log for log in recorder.logs if "cannot handle" in log[2]]
        assert (level, area) == (logging.ERROR, "flaky")
        assert "FrameFeature.on_frame raised RuntimeError" in message


async def test_on_connected_then_reconnected_after_the_gateway_drops_the_connection(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client()
        notes = Notes()
        client.add_feature(notes)
        await client.start()
        await wait_until(lambda: notes.heard == ["connected"])
        first = notes.connections[0]
        assert first == Connected(
            reconnected=False, resumed=False, session_id=client.session_id or "", gateway_id="gw-1"
        )

        await h.gateways[0].drop_all(code=1001)
        await wait_until(lambda: len(notes.connections) == 2)
        assert notes.heard == ["connected", "down:UNAVAILABLE", "reconnected"]
        second = notes.connections[1]
        assert second.reconnected and not second.resumed
        assert second.session_id == client.session_id != first.session_id
        assert second.gateway_id == "gw-1"
        assert "close code 1001" in notes.reasons[0].message


async def test_on_disconnected_tells_the_reason_a_client_failed(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        notes = Notes()
        client.add_feature(notes)
        await client.start()
        denied = ProtocolError(ErrorCode.ERROR_CODE_PERMISSION_DENIED, "user is blocked")
        await h.gateways[0].send_to_all(framing.error_envelope(denied))
        await h.gateways[0].drop_all(code=framing.close_code_for(denied.code))
        await wait_until(lambda: len(notes.reasons) == 1)
        assert notes.heard == ["connected", "down:PERMISSION_DENIED"]
        assert notes.reasons[0].message == "user is blocked"
        assert recorder.failed == notes.reasons
        await client.terminate()  # the last notice comes whatever the client was doing
        assert notes.heard == ["connected", "down:PERMISSION_DENIED", "down:WRONG_STATE"]


async def test_terminate_tells_features_and_stops_their_tasks(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        notes = Notes()
        stuck = asyncio.Event()

        async def never_returns(envelope: pb.Envelope) -> None:
            stuck.set()
            await asyncio.sleep(3600)

        client.add_feature(notes)
        client.add_feature(FrameFeature("stuck", ["presence_result"], never_returns))
        others = _feature_tasks()
        await client.start()
        await h.gateways[0].send_to_all(_presence_push("bob"))
        await asyncio.wait_for(stuck.wait(), 2)
        # and the message client's (the harness's clients support messaging), and the push
        # client's (every started client has one)
        assert len(_feature_tasks() - others) == 4

        began = time.monotonic()
        await client.terminate()
        assert time.monotonic() - began < 3  # a stuck handler is cancelled, not waited for
        assert notes.heard == ["connected", "down:WRONG_STATE"]
        assert "terminated" in notes.reasons[0].message
        assert _feature_tasks() - others == set()
        assert recorder.stopped == 1


async def test_a_feature_may_terminate_its_client_from_a_handler(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        notes = Notes()

        async def stop_client(envelope: pb.Envelope) -> None:
            await client.terminate()

        client.add_feature(notes)
        client.add_feature(FrameFeature("stopper", ["presence_result"], stop_client))
        others = _feature_tasks()
        await client.start()
        await h.gateways[0].send_to_all(_presence_push("bob"))
        await wait_until(lambda: recorder.stopped == 1)
        assert notes.heard == ["connected", "down:WRONG_STATE"]
        await wait_until(lambda: _feature_tasks() - others == set())


async def test_a_feature_added_after_start_hears_of_the_connection_at_once(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client()
        await client.start()
        notes = Notes()
        client.add_feature(notes)
        await wait_until(lambda: notes.heard == ["connected"])
        assert notes.connections[0].session_id == client.session_id
        await h.gateways[0].push_echo_event("event-after")
        await wait_until(lambda: notes.frames() == ["event-after"])


async def test_add_feature_refuses_what_a_feature_cannot_have(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client()
        events = Notes("events")
        client.add_feature(events)
        with pytest.raises(ValueError, match="'echo_event' frames go to feature 'events'"):
            client.add_feature(Notes("again", ("error", "echo_event")))
        with pytest.raises(ValueError, match="'echo_request' is a body clients send"):
            client.add_feature(Notes("sender", ("echo_request",)))
        with pytest.raises(ValueError, match="'incoming_call' is not a body"):
            client.add_feature(Notes("typo", ("incoming_call",)))
        with pytest.raises(ValueError, match="two features are named 'events'"):
            client.add_feature(Notes("events", ("error",)))
        with pytest.raises(ValueError, match="was added already"):
            client.add_feature(events)
        with pytest.raises(ValueError, match="has no name"):
            client.add_feature(Feature())
        # A refused feature was not attached, and took no body: "error" is still free.
        errors = Notes("errors", ("error",))
        client.add_feature(errors)
        assert client.feature(Notes) is events
        with pytest.raises(LookupError, match="no FrameFeature"):
            client.feature(FrameFeature)

        await client.start()
        await h.gateways[0].push_echo_event("event-1")
        await wait_until(lambda: events.frames() == ["event-1"])
        assert [len(f.links) for f in (events, errors)] == [1, 1]


async def test_feature_link_request_returns_the_typed_reply(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client()
        notes = Notes()
        client.add_feature(notes)
        link = notes.link
        assert (link.user_id, link.application_key) == ("alice", h.backend.application_key)
        assert link.capabilities.messaging and link.log.area == "notes"
        with pytest.raises(ParleyError) as caught:
            await link.request(echo.EchoRequest(text="too early"), echo.EchoReply)
        assert caught.value.code == "WRONG_STATE"

        await client.start()
        reply = await link.request(echo.EchoRequest(text="hello"), echo.EchoReply)
        assert isinstance(reply, echo.EchoReply)
        assert (reply.text, reply.caller.user_id) == ("hello", "alice")
        assert reply.caller.session_id == client.session_id

        seq = await link.send(echo.EchoRequest(text="no wait"))
        session = h.gateways[0].sessions[0]
        await wait_until(lambda: session.frames[-1].seq == seq)
        assert session.frames[-1].echo_request.text == "no wait"
        with pytest.raises(ValueError, match="clients do not send"):
            await link.send(echo.EchoReply(text="not mine to send"))
        with pytest.raises(ValueError, match="sent by the client's session"):
            await link.send(pb.Ping())
        with pytest.raises(ParleyError) as caught:
            await link.request(echo.EchoRequest(text="typed"), presence_pb.PresenceResult)
        assert caught.value.code == "INTERNAL" and "echo_reply" in caught.value.message


async def test_feature_link_request_raises_for_an_error_reply_or_a_timeout(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        notes = Notes()
        client.add_feature(notes)
        await client.start()
        h.gateways[0].echo_error = ProtocolError(
            ErrorCode.ERROR_CODE_CAPABILITY_NOT_ANNOUNCED, "messaging is off"
        )
        with pytest.raises(ParleyError) as caught:
            await notes.link.request(echo.EchoRequest(text="hello"), echo.EchoReply)
        assert (caught.value.code, caught.value.message) == (
            "CAPABILITY_NOT_ANNOUNCED",
            "messaging is off",
        )
        assert caught.value.type == ErrorType.CAPABILITY
        h.gateways[0].echo_error = None
        with pytest.raises(ParleyError) as caught:
            await notes.link.request(
                echo.EchoRequest(text="slow", delay_ms=500), echo.EchoReply, timeout=0.1
            )
        assert caught.value.code == "TIMEOUT"
        assert client.is_started and not recorder.failed
