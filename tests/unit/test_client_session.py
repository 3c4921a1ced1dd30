"""The live session: Hello/Welcome, heartbeats, token refresh, listening, presence,
reconnection across replicas, errors, terminate."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from parley_client import ErrorType, ParleyError, UserPresence, backoff
from parley_protocol import framing
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.pb import client as pb
from parley_protocol.pb import presence as presence_pb
from tests.unit.client_double import FrameFeature, harness, wait_until


async def test_hello_carries_identity_capabilities_and_seq_1(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client()
        client.set_support_calling(True)
        client.set_support_active_connection_in_background(True)
        await client.start()
        session = h.gateways[0].sessions[0]
        assert session.frames[0].seq == 1
        hello = session.hello
        assert hello is not None
        assert (hello.application_key, hello.user_id) == (h.backend.application_key, "alice")
        assert hello.access_token in h.backend.tokens
        assert hello.capabilities == pb.Capabilities(
            calling=True, messaging=True, active_connection=True, managed_push=False
        )
        assert hello.client_version.startswith("parley-client-python/")


async def test_heartbeats_are_sent_with_increasing_seq(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client(h.builder().heartbeat_interval(0.05))
        await client.start()
        session = h.gateways[0].sessions[0]
        await wait_until(lambda: session.bodies().count("ping") >= 3, timeout=3)
        assert session.seq_problems == []
        assert client.is_started


async def test_heartbeat_interval_comes_from_welcome(tmp_path: Path) -> None:
    async with harness(tmp_path, heartbeat_ms=50) as h:
        client, _ = h.client()
        await client.start()
        session = h.gateways[0].sessions[0]
        await wait_until(lambda: session.bodies().count("ping") >= 2, timeout=3)


async def test_silent_gateway_is_left_for_another(tmp_path: Path) -> None:
    async with harness(tmp_path, gateways=2) as h:
        client, recorder = h.client(h.builder().heartbeat_interval(0.1))
        await client.start()
        assert client.gateway_id == "gw-1"
        h.gateways[0].answer_pings = False
        await wait_until(lambda: not client.is_started, timeout=5)
        await client.wait_connected(5)
        assert client.gateway_id == "gw-2"
        assert recorder.logged("stopped answering heartbeats")


async def test_an_idle_client_of_a_gateway_that_pings_answers_and_sends_no_ping(
    tmp_path: Path,
) -> None:
    """Welcome.gateway_pings: the gateway's WebSocket Pings, answered by the client's Pongs,
    keep an idle connection known alive both ways; the client sends no Ping frame."""
    async with harness(tmp_path, heartbeat_ms=100, pings_idle=True) as h:
        client, recorder = h.client()
        await client.start()
        session = h.gateways[0].sessions[0]
        await wait_until(lambda: session.pongs >= 8, timeout=5)  # eight intervals and more
        assert "ping" not in session.bodies()
        assert client.is_started and len(h.gateways[0].sessions) == 1
        assert not recorder.logged("stopped answering heartbeats")


async def test_a_pinging_gateway_gone_quiet_is_asked_and_then_left_for_another(
    tmp_path: Path,
) -> None:
    """Heard nothing for 1.5 intervals from a gateway that pings: the client sends a Ping
    of its own, and leaves the gateway when no Pong comes within half an interval."""
    async with harness(tmp_path, gateways=2, heartbeat_ms=200, pings_idle=True) as h:
        client, recorder = h.client()
        await client.start()
        assert client.gateway_id == "gw-1"
        session = h.gateways[0].sessions[0]
        h.gateways[0].answer_pings = False  # neither pings nor answers any more
        quiet_at = asyncio.get_running_loop().time()
        await wait_until(lambda: "ping" in session.bodies(), timeout=5)
        asked_after = asyncio.get_running_loop().time() - quiet_at
        await wait_until(lambda: not client.is_started, timeout=5)
        await client.wait_connected(5)
        assert client.gateway_id == "gw-2"
        assert recorder.logged("stopped answering heartbeats")
        assert asked_after >= 0.1  # not at once: the gateway's last Ping was heard


async def test_token_is_refreshed_before_it_expires(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.backend.token_ttl_ms = 1_000
        client, recorder = h.client()
        await client.start()
        session = h.gateways[0].sessions[0]
        await wait_until(lambda: "refresh_token" in session.bodies(), timeout=3)
        refresh = next(f for f in session.frames if f.WhichOneof("body") == "refresh_token")
        assert refresh.refresh_token.access_token != session.hello.access_token  # type: ignore[union-attr]
        assert refresh.refresh_token.access_token in h.backend.tokens
        assert len(h.backend.token_requests) >= 1
        # refreshed at ~80% of the lifetime, so the session outlives several tokens
        await asyncio.sleep(1.5)
        assert client.is_started and len(session.bodies()) >= 3 and not recorder.failed


async def test_listening_and_presence(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, _ = h.client(h.builder("alice"))
        bob, _ = h.client(h.builder("bob"))
        alice.start_listening_on_active_connection()  # before start: applied on connect
        await alice.start()
        await bob.start()
        assert h.backend.listening["alice"]

        result = await bob.presence(["alice", "carol", "alice"])
        assert result == {
            "alice": UserPresence("alice", True, 1),
            "carol": UserPresence("carol", False, 0),
        }
        await alice.stop_listening_on_active_connection()
        assert (await bob.presence("alice"))["alice"].online is False
        # Listening from the start rode on the Hello; only stopping took a Listen.
        assert h.gateways[0].sessions[0].hello.listening
        assert h.gateways[0].sessions[0].bodies().count("listen") == 1


async def test_presence_checks_user_ids_before_sending(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client()
        await client.start()
        with pytest.raises(ParleyError) as caught:
            await client.presence(["ok", "x" * 41])
        assert caught.value.code == "INVALID_USER_ID"
        assert await client.presence([]) == {}
        assert "presence_query" not in h.gateways[0].sessions[0].bodies()


async def test_error_frame_with_reply_to_fails_the_request(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client()
        await client.start()
        h.gateways[0].presence_error = ProtocolError(
            ErrorCode.ERROR_CODE_PERMISSION_DENIED, "bob belongs to another application"
        )
        with pytest.raises(ParleyError) as caught:
            await client.presence(["bob"], timeout=2)
        assert caught.value.code == "PERMISSION_DENIED"
        assert caught.value.message == "bob belongs to another application"
        assert client.is_started  # a failed request does not end the session


async def test_request_times_out(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client()
        await client.start()
        h.gateways[0].presence_delay = 0.3
        with pytest.raises(ParleyError) as caught:
            await client.presence(["bob"], timeout=0.1)
        assert (caught.value.code, caught.value.type) == ("TIMEOUT", ErrorType.NETWORK)


async def test_reconnects_to_the_next_host_and_listens_again(tmp_path: Path) -> None:
    async with harness(tmp_path, gateways=2) as h:
        client, recorder = h.client()
        await client.start()
        await client.start_listening_on_active_connection()
        first_session = client.session_id
        assert client.gateway_id == "gw-1"

        await h.gateways[0].stop()
        await wait_until(lambda: not client.is_started)  # the drop is noticed...
        await client.wait_connected(5)  # ...and repaired
        assert client.gateway_id == "gw-2"
        assert client.session_id != first_session
        [session] = h.gateways[1].sessions
        # The Hello says the device listens and the Welcome confirms it: no Listen follows.
        assert session.hello is not None and session.hello.listening
        assert "listen" not in session.bodies()
        assert session.hello.access_token in h.backend.tokens
        assert h.backend.listening["alice"] == {session.session_id}
        assert recorder.logged("reconnecting") and recorder.logged("reconnected")
        assert recorder.started == 1 and not recorder.failed
        assert len(h.backend.register_requests) == 1


async def test_a_gateway_that_does_not_confirm_the_hellos_listening_gets_a_listen(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path, gateways=2) as h:
        h.gateways[1].takes_hello_listening = False  # an older gateway
        client, _ = h.client()
        await client.start()
        await client.start_listening_on_active_connection()
        assert "listen" in h.gateways[0].sessions[0].bodies()  # asked for after the Hello

        await h.gateways[0].stop()
        await wait_until(lambda: not client.is_started)
        await client.wait_connected(5)
        [session] = h.gateways[1].sessions
        assert session.hello is not None and session.hello.listening
        assert session.bodies()[:2] == ["hello", "listen"]
        assert h.backend.listening["alice"] == {session.session_id}


async def test_expired_token_is_renewed_on_reconnect(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        await client.start()
        first = h.gateways[0].sessions[0]
        assert first.hello is not None
        user, instance, _ = h.backend.tokens[first.hello.access_token]
        h.backend.tokens[first.hello.access_token] = (user, instance, 0)  # expired now
        await h.gateways[0].drop_all()
        await wait_until(lambda: len(h.gateways[0].live_sessions()) == 1, timeout=5)
        await client.wait_connected(5)
        assert len(h.backend.token_requests) == 1
        assert not recorder.failed


async def test_fatal_error_on_reconnect_fails_the_client(tmp_path: Path) -> None:
    async with harness(tmp_path, gateways=2) as h:
        client, recorder = h.client()
        await client.start()
        h.gateways[1].hello_error = ProtocolError(
            ErrorCode.ERROR_CODE_PERMISSION_DENIED, "user is blocked"
        )
        await h.gateways[0].stop()
        await wait_until(lambda: not client.is_started)
        with pytest.raises(ParleyError) as caught:
            await client.wait_connected(5)
        assert (caught.value.code, caught.value.message) == ("PERMISSION_DENIED", "user is blocked")
        assert recorder.failed == [caught.value]
        assert not client.is_started


async def test_start_fails_with_a_network_error_when_no_gateway_answers(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        await h.gateways[0].stop()
        with pytest.raises(ParleyError) as caught:
            await client.start()
        assert caught.value.type is ErrorType.NETWORK
        assert recorder.failed == [caught.value]


async def test_other_frames_go_to_registered_handlers(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client()
        received: list[pb.Envelope] = []

        async def on_presence(envelope: pb.Envelope) -> None:
            await asyncio.sleep(0)
            received.append(envelope)

        client.add_feature(FrameFeature("presence", ["presence_result"], on_presence))
        with pytest.raises(ValueError, match="not a body"):
            client.add_feature(FrameFeature("typo", ["incoming_call_typo"], on_presence))
        await client.start()
        pushed = pb.Envelope(presence_result=presence_pb.PresenceResult())
        pushed.presence_result.users.add(user_id="bob", online=True, devices=2)
        await h.gateways[0].send_to_all(pushed)
        await wait_until(lambda: len(received) == 1)
        assert received[0].presence_result.users[0].user_id == "bob"


async def test_terminate_is_idempotent(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        await client.start()
        await asyncio.gather(client.terminate(), client.terminate())
        await client.terminate()
        assert recorder.stopped == 1
        assert not client.is_started
        session = h.gateways[0].sessions[0]
        assert session.bodies()[-1] == "goodbye"
        await wait_until(lambda: session.ws.closed)
        with pytest.raises(ParleyError) as caught:
            await client.presence(["bob"])
        assert caught.value.code == "WRONG_STATE"
        with pytest.raises(ParleyError, match="terminated"):
            await client.start()


async def test_terminate_gracefully_lets_pending_requests_finish(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        await client.start()
        h.gateways[0].presence_delay = 0.2
        pending = asyncio.create_task(client.presence(["bob"]))
        await wait_until(lambda: "presence_query" in h.gateways[0].sessions[0].bodies())
        await client.terminate_gracefully()
        assert (await pending)["bob"].online is False
        assert recorder.stopped == 1


async def test_log_messages_reach_python_logging(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client()
        with caplog.at_level(logging.INFO, logger="parley_client"):
            await client.start()
        assert any("connected to" in r.getMessage() for r in caplog.records)
        secret = client.config.application_secret
        assert secret and not any(secret in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("close_code", "outcome"),
    [(1012, "reconnects"), (1001, "reconnects"), (4403, "PERMISSION_DENIED")],
)
async def test_close_codes_without_an_error_frame(
    tmp_path: Path, close_code: int, outcome: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backoff, "DRAIN_SPREAD", 0.2)  # the spread is not under test here
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        await client.start()
        first = client.session_id
        await h.gateways[0].drop_all(code=close_code)
        if outcome == "reconnects":
            # Polling for "not started" could miss a reconnect that takes no time at all.
            await wait_until(lambda: client.is_started and client.session_id != first)
            assert len(h.gateways[0].live_sessions()) == 1 and not recorder.failed
        else:
            await wait_until(lambda: bool(recorder.failed))
            assert recorder.failed[0].code == outcome


async def test_listening_asked_for_while_reconnecting_waits_for_the_connection(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        gateway = h.gateways[0]
        client, _ = h.client()
        await client.start()

        def refuse_hellos() -> None:
            gateway.hello_error = ProtocolError(ErrorCode.ERROR_CODE_UNAVAILABLE, "draining")
            gateway.hello_close_code = framing.CLOSE_TRY_AGAIN_LATER

        refuse_hellos()
        await gateway.drop_all()
        await wait_until(lambda: not client.is_started)
        listening = client.start_listening_on_active_connection()
        await asyncio.sleep(0.1)
        assert not listening.done() and client.is_listening
        gateway.hello_error = gateway.hello_close_code = None
        await asyncio.wait_for(listening, 5)
        assert h.backend.listening["alice"] == {client.session_id}

        refuse_hellos()
        await gateway.drop_all()
        await wait_until(lambda: not client.is_started)
        stopping = client.stop_listening_on_active_connection()
        await client.terminate()
        with pytest.raises(ParleyError) as caught:
            await stopping
        assert caught.value.code == "WRONG_STATE"
        with pytest.raises(ParleyError, match="terminated"):
            await client.start_listening_on_active_connection()
