"""One connection's framing: frames around the Welcome, frame size, heartbeat interval."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from parley_client import ErrorType, ParleyError
from parley_client.hello import client_version
from parley_protocol import framing
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.pb import client as pb
from parley_protocol.pb import presence as presence_pb
from tests.unit.client_double import FrameFeature, harness, wait_until


def _presence_push(user_id: str, reply_to: int = 0) -> pb.Envelope:
    envelope = pb.Envelope(reply_to=reply_to, presence_result=presence_pb.PresenceResult())
    envelope.presence_result.users.add(user_id=user_id, online=True, devices=1)
    return envelope


def _error(code: int, reason: str, reply_to: int = 0) -> pb.Envelope:
    return framing.error_envelope(ProtocolError(code, reason), reply_to)


async def test_frames_before_the_welcome_are_dispatched_after_it_in_order(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        gateway = h.gateways[0]
        # Not answers to the Hello (seq 1): an unsolicited Error must not fail it.
        gateway.before_welcome = [
            _presence_push("early-1"),
            _error(ErrorCode.ERROR_CODE_PERMISSION_DENIED, "not for the hello"),
            _presence_push("early-2", reply_to=7),
        ]
        client, recorder = h.client()
        received: list[str] = []
        welcomed: list[bool] = []

        def on_frame(envelope: pb.Envelope) -> None:
            welcomed.append(client.session_id is not None)
            if envelope.WhichOneof("body") == "error":
                received.append(f"error:{envelope.error.reason}")
            else:
                received.append(envelope.presence_result.users[0].user_id)

        client.add_feature(FrameFeature("frames", ["presence_result", "error"], on_frame))
        await client.start()
        await gateway.send_to_all(_presence_push("after-welcome"))
        await wait_until(lambda: len(received) == 4)
        assert received == ["early-1", "error:not for the hello", "early-2", "after-welcome"]
        assert all(welcomed)
        assert client.is_started and client.gateway_id == "gw-1"
        assert recorder.started == 1 and not recorder.failed


async def test_frames_before_a_failed_hello_are_dropped_with_a_log(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        gateway = h.gateways[0]
        gateway.before_welcome = [_presence_push("early")]
        gateway.hello_error = ProtocolError(
            ErrorCode.ERROR_CODE_PERMISSION_DENIED, "user is blocked"
        )
        client, recorder = h.client()
        received: list[pb.Envelope] = []
        client.add_feature(FrameFeature("presence", ["presence_result"], received.append))
        with pytest.raises(ParleyError) as caught:
            await client.start()
        # The Error with reply_to == the Hello's seq is the Hello's failure.
        assert (caught.value.code, caught.value.message) == ("PERMISSION_DENIED", "user is blocked")
        assert recorder.failed == [caught.value]
        assert recorder.logged("dropping 1 frame(s)") and recorder.logged("presence_result")
        await asyncio.sleep(0.05)
        assert received == []


async def test_an_error_before_a_close_explains_a_hello_that_got_no_answer(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        gateway = h.gateways[0]
        gateway.before_welcome = [_error(ErrorCode.ERROR_CODE_PERMISSION_DENIED, "blocked")]
        gateway.hello_close_code = framing.CLOSE_FORBIDDEN
        client, recorder = h.client()
        with pytest.raises(ParleyError) as caught:
            await client.start()
        assert (caught.value.code, caught.value.message) == ("PERMISSION_DENIED", "blocked")
        assert recorder.logged("dropping 1 frame(s)")


async def test_oversized_request_fails_locally_and_is_not_sent(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client()
        await client.start()
        user_ids = [f"user-{index:05d}-" + "x" * 28 for index in range(4_000)]
        with pytest.raises(ParleyError) as caught:
            await client.presence(user_ids)
        assert (caught.value.code, caught.value.type) == ("FRAME_TOO_LARGE", ErrorType.OTHER)
        assert str(framing.MAX_FRAME_BYTES) in caught.value.message
        session = h.gateways[0].sessions[0]
        assert "presence_query" not in session.bodies()
        # The session goes on, and the refused frame used no seq.
        assert (await client.presence(user_ids[:100]))[user_ids[0]].online is False
        assert session.seq_problems == []
        assert [frame.seq for frame in session.frames] == list(range(1, len(session.frames) + 1))
        assert client.is_started


async def test_heartbeat_override_is_capped_by_the_welcome(tmp_path: Path) -> None:
    async with harness(tmp_path, heartbeat_ms=100) as h:
        client, recorder = h.client(h.builder().heartbeat_interval(30))
        await client.start()
        session = h.gateways[0].sessions[0]
        await wait_until(lambda: session.bodies().count("ping") >= 2, timeout=2)
        assert recorder.logged("heartbeat 0.1 s")


async def test_a_busy_gateway_may_take_longer_than_the_request_timeout_to_welcome(
    tmp_path: Path,
) -> None:
    """A gateway that took the WebSocket but queues the sign-in (a reconnect storm) gets up
    to three request timeouts for its Welcome: the client waits on the one connection
    instead of starting over at the back of the queue."""
    async with harness(tmp_path) as h:
        gateway = h.gateways[0]
        gateway.welcome_delay = 0.8
        client, recorder = h.client(h.builder().request_timeout(0.5))
        await client.start()
        assert client.is_started and recorder.started == 1
        assert len(gateway.sessions) == 1  # one connection, one Hello


async def test_a_gateway_slower_than_three_request_timeouts_to_welcome_times_out(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        gateway = h.gateways[0]
        gateway.welcome_delay = 2.0
        client, _ = h.client(h.builder().request_timeout(0.3))
        with pytest.raises(ParleyError) as caught:
            await client.start()
        assert caught.value.code == "TIMEOUT"
        assert "sent no Welcome within 0.9 s" in caught.value.message


async def test_the_upgrade_names_the_sdk_and_sends_no_accept_headers(tmp_path: Path) -> None:
    """Each header of the WebSocket upgrade stays in the gateway's memory for the session:
    the client sends its SDK's name and none of aiohttp's Accept headers."""
    async with harness(tmp_path) as h:
        client, _ = h.client()
        await client.start()
        (headers,) = h.gateways[0].connect_headers
        assert headers["User-Agent"] == client_version()
        assert "Accept" not in headers and "Accept-Encoding" not in headers
