"""The push client through the fake gateway and its push double (push_double.py): push data
and managed push registered, sent again on every new session and not on a resumed one,
refused when too large or without the capability; relayed payloads: a call claimed (and
offered to this device), its canceled and timed-out flags, a message fetched, payloads the
service refuses, and a client that was never started."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from parley.v1 import push_pb2 as push_pb
from parley_client import (
    CallNotificationResult,
    ErrorType,
    MessageNotificationResult,
    NotificationResult,
    ParleyClient,
    ParleyError,
    PushClient,
    PushProvider,
    PushToken,
)
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.pb import calls as calls_pb
from parley_protocol.pb import client as pb
from tests.support.calls import Follower, Party
from tests.unit.call_parties import party
from tests.unit.calls_double import client_now_ms
from tests.unit.client_double import wait_until
from tests.unit.messaging_double import Heard, device, wire_message
from tests.unit.push_double import PushHarness, push_harness
from tests.unit.test_client_features import Notes

NEW_ID = str(uuid.uuid4())
WEB_SUBSCRIPTION = {
    "endpoint": "https://push.example.test/send/abc",
    "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA", "auth": "tBHItJI5svbpez7KI4CCXg"},
}


def instance_of(h: PushHarness, client: ParleyClient) -> str:
    """The device instance of `client` (its latest connection's)."""
    sessions = [s for g in h.gateways for s in g.sessions if s.session_id == client.session_id]
    return h.backend.instance_of(sessions[-1])


# -- registration -----------------------------------------------------------------------------


async def test_push_data_set_before_start_is_sent_on_connect(tmp_path: Path) -> None:
    async with push_harness(tmp_path) as h:
        client, _ = h.client()
        await client.register_push_notification_data(b"device-42")  # not connected: kept
        assert h.frames("register_push_data") == []
        await client.start()
        await wait_until(lambda: len(h.push.of("register_push_data")) == 1)
        assert [f.push_data for f in h.frames("register_push_data")] == [b"device-42"]
        assert h.backend.registration(instance_of(h, client)).push_data == b"device-42"
        assert client.feature(PushClient).push_data == b"device-42"


async def test_registrations_are_sent_again_on_a_new_session_not_on_a_resumed_one(
    tmp_path: Path,
) -> None:
    async with push_harness(tmp_path) as h:
        h.backend.windows = True
        client, _ = h.client()
        client.set_support_managed_push(True)
        notes = Notes("connections", ("error",))
        client.add_feature(notes)
        await client.start()
        await client.register_push_notification_data(b"data")  # connected: sent at once
        await client.register_managed_push(PushToken.fcm("fcm-token-1"))
        assert len(h.frames("register_push_data")) == len(h.frames("register_managed_push")) == 1
        await asyncio.sleep(0.1)  # the first connection's re-send has nothing left to send
        assert len(h.frames("register_push_data")) == 1

        await h.gateways[0].drop_all()  # resumed: the service still has both
        await wait_until(lambda: len(notes.connections) == 2)
        assert notes.connections[1].resumed
        await asyncio.sleep(0.1)
        assert len(h.frames("register_push_data")) == len(h.frames("register_managed_push")) == 1

        h.backend.resume_answer = pb.RESUME_OUTCOME_EXPIRED  # a new session: both again
        await h.gateways[0].drop_all()
        await wait_until(lambda: len(notes.connections) == 3)
        assert not notes.connections[2].resumed
        await wait_until(lambda: len(h.frames("register_managed_push")) == 2)
        assert [f.push_data for f in h.frames("register_push_data")] == [b"data", b"data"]
        managed = h.frames("register_managed_push")[-1]
        assert (managed.provider, managed.token) == (push_pb.PUSH_PROVIDER_FCM, "fcm-token-1")
        new_session = [s for s in h.gateways[0].sessions if s.session_id == client.session_id]
        assert new_session[-1].bodies().count("register_push_data") == 1

        await client.unregister_push_notification_data()
        await client.unregister_managed_push()
        registration = h.backend.registration(instance_of(h, client))
        assert registration.push_data is None and registration.managed is None
        h.backend.resume_answer = pb.RESUME_OUTCOME_EXPIRED
        await h.gateways[0].drop_all()
        await wait_until(lambda: len(notes.connections) == 4)
        await asyncio.sleep(0.1)  # nothing is set: nothing is sent
        assert len(h.frames("register_push_data")) == 2
        assert len(h.frames("unregister_push_data")) == 1


async def test_a_registration_that_failed_on_the_network_is_sent_at_the_next_connection(
    tmp_path: Path,
) -> None:
    async with push_harness(tmp_path) as h:
        h.backend.windows = True
        client, recorder = h.client()
        notes = Notes("connections", ("error",))
        client.add_feature(notes)
        await client.start()
        h.push.errors["register_push_data"] = [
            ProtocolError(ErrorCode.ERROR_CODE_UNAVAILABLE, "push is down")
        ]
        with pytest.raises(ParleyError) as caught:
            await client.register_push_notification_data(b"again")
        assert caught.value.type is ErrorType.NETWORK
        assert client.feature(PushClient).push_data == b"again"  # kept
        await h.gateways[0].drop_all()  # even a resumed session sends it
        await wait_until(lambda: len(notes.connections) == 2)
        assert notes.connections[1].resumed
        await wait_until(lambda: len(h.push.of("register_push_data")) == 2)
        await wait_until(
            lambda: h.backend.registration(instance_of(h, client)).push_data == b"again"
        )
        assert recorder.logged("sent again later")


async def test_push_data_of_more_than_1024_bytes_is_refused_and_nothing_sent(
    tmp_path: Path,
) -> None:
    async with push_harness(tmp_path) as h:
        client, _ = h.client()
        await client.start()
        with pytest.raises(ParleyError) as caught:
            await client.register_push_notification_data(b"x" * 1025)
        assert caught.value.code == "PAYLOAD_TOO_LARGE"
        assert caught.value.error_code == ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE
        assert "1025" in caught.value.message and "1024" in caught.value.message
        with pytest.raises(TypeError):
            await client.register_push_notification_data("text")  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert h.frames("register_push_data") == []
        assert client.feature(PushClient).push_data is None

        await client.register_push_notification_data(b"y" * 1024)
        assert [len(f.push_data) for f in h.frames("register_push_data")] == [1024]
        assert h.backend.registration(instance_of(h, client)).push_data == b"y" * 1024


async def test_a_refused_registration_raises_and_keeps_what_the_service_has(
    tmp_path: Path,
) -> None:
    async with push_harness(tmp_path) as h:
        client, _ = h.client()
        await client.start()
        await client.register_push_notification_data(b"first")
        h.push.errors["register_push_data"] = [
            ProtocolError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "no thanks", "push_data")
        ]
        with pytest.raises(ParleyError) as caught:
            await client.register_push_notification_data(b"second")
        assert (caught.value.code, caught.value.message) == ("INVALID_ARGUMENT", "no thanks")
        assert client.feature(PushClient).push_data == b"first"
        assert h.backend.registration(instance_of(h, client)).push_data == b"first"


async def test_managed_push_needs_the_capability(tmp_path: Path) -> None:
    async with push_harness(tmp_path) as h:
        client, _ = h.client()
        await client.start()
        with pytest.raises(ParleyError) as caught:
            await client.register_managed_push(PushToken.fcm("token"))
        assert caught.value.type is ErrorType.CAPABILITY
        assert caught.value.code == "CAPABILITY_NOT_ANNOUNCED"
        assert "set_support_managed_push(True)" in caught.value.message
        await asyncio.sleep(0.05)
        assert h.frames("register_managed_push") == []
        assert client.feature(PushClient).managed_push_token is None

        with_push, _ = h.client(h.builder("bob"))
        with_push.set_support_managed_push(True)
        await with_push.start()
        token = PushToken.web_push(WEB_SUBSCRIPTION)
        await with_push.register_managed_push(token)
        managed = h.backend.registration(instance_of(h, with_push)).managed
        assert managed == (push_pb.PUSH_PROVIDER_WEB_PUSH, token.token)


def test_push_tokens_are_checked_and_normalised() -> None:
    assert PushToken.apns("AB01" * 16).token == "ab01" * 16
    assert PushToken.apns(bytes([0xAB, 0x01])).token == "ab01"
    assert PushToken.fcm("f").provider is PushProvider.FCM
    web = PushToken.web_push(WEB_SUBSCRIPTION)
    assert web.provider is PushProvider.WEB_PUSH
    assert " " not in web.token and "\n" not in web.token
    assert PushToken.web_push(web.token) == web  # from its JSON text, the same token
    for bad in (
        lambda: PushToken.apns("xyz"),
        lambda: PushToken.apns("abc"),
        lambda: PushToken.fcm(""),
        lambda: PushToken.web_push({"endpoint": "https://e.test"}),
        lambda: PushToken.web_push("not json"),
        lambda: PushToken(PushProvider.WEB_PUSH, '{"keys": {}}'),
    ):
        with pytest.raises(ParleyError) as caught:
            bad()
        assert caught.value.code == "INVALID_ARGUMENT"
    with pytest.raises(TypeError):
        PushToken.fcm(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PushToken("fcm", "token")  # type: ignore[arg-type]


# -- relay: calls -----------------------------------------------------------------------------


async def sleeping_callee(h: PushHarness, user_id: str = "bob") -> tuple[ParleyClient, Party]:
    """A callee who registered once, then was terminated: a new client of the same device,
    never started (NEW), taking calls."""
    first = await party(h, user_id)
    await first.client.terminate()
    client, _ = h.client(h.builder(user_id).media(False))
    client.set_support_calling(True)
    callee = Party(client)
    client.call_client.add_call_client_listener(Follower(callee))
    return client, callee


def call_push(call_id: str, caller: str = "alice", video: bool = False, **kw: int) -> Any:
    return push_pb.CallPush(
        call_id=call_id,
        caller_user_id=caller,
        headers={"topic": "push"},
        video=video,
        started_at_ms=client_now_ms(),
        ring_until_ms=kw.get("ring_until_ms", client_now_ms() + 60_000),
    )


async def test_relaying_a_call_payload_starts_the_client_and_the_call_rings(
    tmp_path: Path,
) -> None:
    async with push_harness(tmp_path) as h:
        alice = await party(h, "alice")
        bob, callee = await sleeping_callee(h)
        call = alice.call("bob", video=True, topic="push")
        await wait_until(lambda: alice.heard(call) == ["push"])  # no device of bob's reached
        payload = h.push.payload("bob", call_push(call.call_id, video=True))

        assert not bob.is_started
        result = await bob.relay_remote_push_notification_payload(payload.decode("ascii"))
        assert bob.is_started  # relaying started it
        assert result == NotificationResult(
            is_valid=True,
            is_call=True,
            call_result=CallNotificationResult(
                call_id=call.call_id,
                remote_user_id="alice",
                headers={"topic": "push"},
                is_timed_out=False,
                is_call_canceled=False,
                is_video_offered=True,
            ),
        )
        assert [call_id for _, call_id in h.backend.claims] == [call.call_id]
        incoming = await callee.next_incoming()  # on_incoming_call
        assert (incoming.call_id, incoming.remote_user_id) == (call.call_id, "alice")
        await wait_until(lambda: alice.heard(call) == ["push", "progressing"])  # it rings
        await incoming.answer()
        await call.wait_established(2)


@pytest.mark.parametrize(
    ("cause", "canceled", "timed_out"),
    [
        (calls_pb.CALL_END_CAUSE_CANCELED, True, False),
        (calls_pb.CALL_END_CAUSE_NO_ANSWER, False, True),
        (calls_pb.CALL_END_CAUSE_TIMEOUT, False, True),
        (calls_pb.CALL_END_CAUSE_DENIED, False, False),
    ],
)
async def test_a_call_that_ended_says_how(
    tmp_path: Path, cause: int, canceled: bool, timed_out: bool
) -> None:
    async with push_harness(tmp_path) as h:
        alice = await party(h, "alice")
        bob, callee = await sleeping_callee(h)
        call = alice.call("bob")
        await wait_until(lambda: alice.heard(call) == ["push"])
        await h.backend.calls.end(call.call_id, cause)
        result = await bob.relay_remote_push_notification_payload(
            h.push.payload("bob", call_push(call.call_id))
        )
        assert result.is_valid and result.is_call and not result.is_message
        assert result.call_result is not None and result.error is None
        assert (result.call_result.is_call_canceled, result.call_result.is_timed_out) == (
            canceled,
            timed_out,
        )
        assert len(h.backend.claims) == 1
        await asyncio.sleep(0.1)
        assert callee.incoming == []  # an ended call is not offered


@pytest.mark.parametrize(("rang_until", "timed_out"), [(-1000, True), (60_000, False)])
async def test_a_call_whose_record_is_gone_timed_out_once_it_rang_out(
    tmp_path: Path, rang_until: int, timed_out: bool
) -> None:
    async with push_harness(tmp_path) as h:
        client, _ = h.client()
        client.set_support_calling(True)
        await client.start()
        call_id = str(uuid.uuid4())
        payload = h.push.payload(
            "alice", call_push(call_id, caller="carol", ring_until_ms=client_now_ms() + rang_until)
        )
        result = await client.relay_remote_push_notification_payload(payload)
        assert h.backend.claims and h.backend.claims[0][1] == call_id  # NOT_FOUND
        assert result.is_valid and result.error is None
        assert result.call_result is not None
        assert result.call_result.is_timed_out is timed_out
        assert result.call_result.is_call_canceled is False
        assert result.call_result.remote_user_id == "carol"


async def test_a_client_without_calling_does_not_claim_and_reads_the_payload_time(
    tmp_path: Path,
) -> None:
    async with push_harness(tmp_path) as h:
        client, recorder = h.client()  # messaging only
        await client.start()
        call_id = str(uuid.uuid4())
        rang_out = h.push.payload(
            "alice", call_push(call_id, ring_until_ms=client_now_ms() - 1), expires_in_ms=60_000
        )
        result = await client.relay_remote_push_notification_payload(rang_out)
        assert result.is_valid and result.is_call
        assert result.call_result is not None and result.call_result.is_timed_out
        ringing = await client.relay_remote_push_notification_payload(
            h.push.payload("alice", call_push(call_id))
        )
        assert ringing.call_result is not None and not ringing.call_result.is_timed_out
        assert h.backend.claims == []
        assert recorder.logged("calling is not supported")


async def test_a_relay_or_claim_lost_on_the_network_is_raised(tmp_path: Path) -> None:
    async with push_harness(tmp_path) as h:
        client, _ = h.client()
        client.set_support_calling(True)
        await client.start()
        h.push.errors["relay_push_payload"] = [
            ProtocolError(ErrorCode.ERROR_CODE_UNAVAILABLE, "push is down")
        ]
        payload = h.push.payload("alice", call_push(str(uuid.uuid4())))
        with pytest.raises(ParleyError) as caught:
            await client.relay_remote_push_notification_payload(payload)
        assert caught.value.type is ErrorType.NETWORK
        assert h.backend.claims == []

        h.backend.claim_errors = [ProtocolError(ErrorCode.ERROR_CODE_TIMEOUT, "calls is slow")]
        with pytest.raises(ParleyError) as caught:
            await client.relay_remote_push_notification_payload(payload)
        assert (caught.value.code, caught.value.type) == ("TIMEOUT", ErrorType.NETWORK)
        assert len(h.backend.claims) == 1


async def test_a_claim_refused_otherwise_is_told_beside_a_valid_result(tmp_path: Path) -> None:
    async with push_harness(tmp_path) as h:
        client, _ = h.client()
        client.set_support_calling(True)
        await client.start()
        h.backend.claim_errors = [
            ProtocolError(ErrorCode.ERROR_CODE_PERMISSION_DENIED, "not a call to you")
        ]
        result = await client.relay_remote_push_notification_payload(
            h.push.payload("alice", call_push(str(uuid.uuid4())))
        )
        assert result.is_valid and result.is_call and result.call_result is not None
        assert result.error is not None and result.error.code == "PERMISSION_DENIED"
        assert not result.call_result.is_timed_out


# -- relay: payloads the service refuses --------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda h: h.push.payload("alice", call_push(NEW_ID), key=b"k" * 32), "INVALID_SIGNATURE"),
        (lambda h: h.push.payload("alice", call_push(NEW_ID), expires_in_ms=-1), "STALE_TIMESTAMP"),
        (lambda h: h.push.payload("bob", call_push(NEW_ID)), "PERMISSION_DENIED"),
        (
            lambda h: h.push.payload(
                "alice", call_push(NEW_ID), application_key="00000000-0000-0000-0000-000000000000"
            ),
            "PERMISSION_DENIED",
        ),
        (lambda h: b"p1.garbage", "INVALID_ARGUMENT"),
        (lambda h: b"", "INVALID_ARGUMENT"),
    ],
)
async def test_a_payload_the_service_refuses_is_not_valid(
    tmp_path: Path, make: Any, code: str
) -> None:
    async with push_harness(tmp_path) as h:
        client, _ = h.client()
        client.set_support_calling(True)
        await client.start()
        result = await client.relay_remote_push_notification_payload(make(h))
        assert not result.is_valid
        assert not (result.is_call or result.is_message)
        assert result.call_result is None and result.message_result is None
        assert result.error is not None and result.error.code == code
        assert h.backend.claims == []


async def test_a_payload_is_bytes_or_text(tmp_path: Path) -> None:
    async with push_harness(tmp_path) as h:
        client, _ = h.client()
        with pytest.raises(TypeError):
            await client.relay_remote_push_notification_payload(42)  # type: ignore[arg-type]
        assert not client.is_started  # refused before starting


# -- relay: messages ----------------------------------------------------------------------------


async def test_a_message_payload_fetches_the_message(tmp_path: Path) -> None:
    async with push_harness(tmp_path) as h:
        client, _ = h.client()
        heard = Heard()
        client.message_client.add_message_client_listener(heard)
        await client.start()
        await wait_until(lambda: len(h.messaging.of("fetch_messages")) == 1)  # the first session's
        await asyncio.sleep(0.05)
        message = wire_message(str(uuid.uuid4()), sender_id="bob")
        h.messaging.inbox.append(message)  # it waited while the device was away
        payload = h.push.payload(
            "alice",
            push_pb.MessagePush(message_id=message.message_id, sender_id="bob", timestamp_ms=1),
        )
        result = await client.relay_remote_push_notification_payload(payload)
        assert result == NotificationResult(
            is_valid=True,
            is_message=True,
            message_result=MessageNotificationResult(message.message_id, "bob"),
        )
        await wait_until(lambda: heard.of("incoming") == [message.message_id])
        assert len(h.messaging.of("fetch_messages")) == 2
        await wait_until(lambda: message.message_id in h.messaging.acked)


async def test_a_message_payload_on_a_new_client_starts_it_and_shows_the_message(
    tmp_path: Path,
) -> None:
    async with push_harness(tmp_path) as h:
        client, _ = h.client()
        heard = Heard()
        client.message_client.add_message_client_listener(heard)
        message = wire_message(str(uuid.uuid4()), sender_id="bob")
        h.messaging.inbox.append(message)
        payload = h.push.payload(
            "alice", push_pb.MessagePush(message_id=message.message_id, sender_id="bob")
        )
        result = await client.relay_remote_push_notification_payload(payload)
        assert client.is_started
        assert result.is_valid and result.is_message
        await wait_until(lambda: heard.of("incoming") == [message.message_id])
        await asyncio.sleep(0.1)
        assert len(heard.incoming) == 1  # once, though both the session and the push fetched


async def test_a_fetch_asked_for_during_a_download_runs_once_more_after_it(
    tmp_path: Path,
) -> None:
    alice = device(tmp_path)
    gate = alice.service.hold("fetch_messages")
    await alice.connect()  # the new session's download waits for its first page
    await wait_until(lambda: len(alice.service.of("fetch_messages")) == 1)
    late = wire_message(str(uuid.uuid4()))
    alice.service.inbox.append(late)
    alice.client.fetch_unacknowledged()
    alice.client.fetch_unacknowledged()  # asked twice meanwhile: one more download, not two
    assert len(alice.service.of("fetch_messages")) == 1  # nothing new until the first is done
    gate.set()
    await wait_until(lambda: alice.heard.of("incoming") == [late.message_id])
    await asyncio.sleep(0.05)
    assert len(alice.service.of("fetch_messages")) == 2
    alice.client.fetch_unacknowledged()  # none running: a download of its own
    await wait_until(lambda: len(alice.service.of("fetch_messages")) == 3)
    await alice.client.terminate()
