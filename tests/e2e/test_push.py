"""Push notifications end to end: reference clients, auth, two gateways, the calls,
messaging and push services as processes, real NATS and PostgreSQL, and local FCM, APNs
(HTTP/2) and Web Push servers that check authentication and payloads as the providers do.

A callee or recipient with no online device is pushed to: through the provider (managed
push) or through the caller's app (push pairs); the payload relayed to a fresh client of
that user brings the call (answered, audio checked) or the message."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from parley_client import (
    CallEndCause,
    ParleyClient,
    ParleyError,
    PushPair,
    PushToken,
    ToneSource,
    WritableMessage,
)
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_devstack.services import ServiceDef
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import push as push_pb
from tests.support.calls import Follower, Party
from tests.support.media import dominant_hz, received_audio
from tests.support.messaging import listen
from tests.support.providers import (
    FakeApns,
    FakeFcm,
    FakeWebPush,
    LocalTls,
    device_token,
    vapid_key_pair,
)
from tests.support.wire import RawClient, bounded, eventually

from .stack import E2EStack, messaging_def, push_def, start_stack

RINGING_SECONDS = 6

_numbers = itertools.count()


def user(name: str) -> str:
    """A fresh user ID per test holding a space, a dot, `*` and `>`."""
    return f"{name} {next(_numbers)}.x*>"


class Providers:
    def __init__(self, tls: LocalTls) -> None:
        self.tls = tls
        self.fcm = FakeFcm(tls)
        self.apns = FakeApns(tls)
        self.web_push = FakeWebPush(tls)
        self.vapid = vapid_key_pair()

    async def start(self) -> None:
        for fake in (self.fcm, self.apns, self.web_push):
            await fake.start()

    async def stop(self) -> None:
        for fake in (self.fcm, self.apns, self.web_push):
            await fake.stop()


@pytest_asyncio.fixture(scope="module")
async def providers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Providers]:
    running = Providers(LocalTls.create(tmp_path_factory.mktemp("tls")))
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest_asyncio.fixture(scope="module")
async def database(
    postgres_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> str:
    home = tmp_path_factory.mktemp("pushdb")
    return await postgres_server.create_database(f"e2e_push_{home.name.replace('-', '_')[:30]}")


def push_service(ca_file: str) -> ServiceDef:
    return push_def(
        {
            "PARLEY_PUSH_CA_FILE": ca_file,
            "PARLEY_PUSH_RETRY_BASE_SECONDS": "0.2",
            "PARLEY_PUSH_RETRY_MAX_SECONDS": "1",
            "PARLEY_PUSH_CREDENTIALS_CACHE_SECONDS": "0",
        },
        restart=True,
    )


def admin(stack: E2EStack, database: str, *args: str) -> str:
    """Run parley-push-admin against the stack's database, as an operator would."""
    env = {
        **os.environ,
        "PARLEY_DATABASE_URL": database,
        "PARLEY_AUTH_MASTER_KEY": stack.devstack.master_key,
    }
    done = subprocess.run(
        [sys.executable, "-m", "parley_push.admin", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: EmbeddedNats,
    database: str,
    providers: Providers,
) -> AsyncIterator[E2EStack]:
    home = tmp_path_factory.mktemp("push")
    running = await start_stack(
        home,
        nats_server.url,
        database,
        extra=[messaging_def(), push_service(str(providers.tls.ca_file))],
        calls_env={"PARLEY_CALL_RINGING_TIMEOUT_SECONDS": str(RINGING_SECONDS)},
    )
    try:
        app = running.app_key
        account = home / "service-account.json"
        account.write_text(providers.fcm.service_account())
        admin(
            running,
            database,
            "set-fcm",
            "--app",
            app,
            "--service-account",
            str(account),
            "--endpoint",
            providers.fcm.url,
        )
        key = providers.apns.new_key()
        key_file = home / "AuthKey.p8"
        key_file.write_text(key.private_key_pem)
        admin(
            running,
            database,
            "set-apns",
            "--app",
            app,
            "--key-file",
            str(key_file),
            "--team-id",
            key.team_id,
            "--key-id",
            key.key_id,
            "--topic",
            providers.apns.topic,
            "--endpoint",
            providers.apns.url,
        )
        vapid = home / "vapid.pem"
        vapid.write_text(providers.vapid.private_key_pem)
        admin(
            running,
            database,
            "set-web-push",
            "--app",
            app,
            "--vapid-key",
            str(vapid),
            "--subject",
            "mailto:ops@example.com",
        )
        yield running
    except BaseException:
        print(running.output())
        raise
    finally:
        await running.devstack.stop()


def build(
    stack: E2EStack, user_id: str, state: Path, *, tone: float | None = None, managed: bool = False
) -> Party:
    """A client of `user_id` with calling, messaging and real media, not started."""
    client = (
        ParleyClient.builder()
        .application_key(stack.app_key)
        .application_secret(stack.app_secret)
        .user_id(user_id)
        .environment_hosts([stack.host(g) for g in stack.gateways])
        .persistence_dir(state)
        .ice_host_addresses(["127.0.0.1"])
        .build()
    )
    client.set_support_calling(True)
    client.set_support_messaging(True)
    client.set_support_managed_push(managed)
    party = Party(client)
    client.call_client.add_call_client_listener(Follower(party))
    if tone is not None:
        client.audio_controller.set_source(ToneSource(tone))
    return party


async def started(stack: E2EStack, user_id: str, state: Path, **kw: Any) -> Party:
    party = build(stack, user_id, state, **kw)
    await party.client.start()
    await party.client.start_listening_on_active_connection()
    return party


async def away_with_token(stack: E2EStack, user_id: str, state: Path, token: PushToken) -> None:
    """A device of `user_id` registers managed push, then goes away."""
    party = build(stack, user_id, state, managed=True)
    await party.client.start()
    await party.client.register_managed_push(token)
    await party.client.terminate()


async def away_with_data(stack: E2EStack, user_id: str, state: Path, data: bytes) -> None:
    """A device of `user_id` registers push data (app-server push), then goes away."""
    party = build(stack, user_id, state)
    await party.client.start()
    await party.client.register_push_notification_data(data)
    await party.client.terminate()


async def device_rows(database: str, user_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database)
    try:
        return list(
            await conn.fetch(
                "SELECT instance_id, push_data, provider, token FROM push.devices "
                "WHERE user_id = $1 ORDER BY instance_id",
                user_id,
            )
        )
    finally:
        await conn.close()


@bounded(90)
async def test_managed_push_wakes_an_offline_callee_who_answers_and_hears_the_caller(
    stack: E2EStack, providers: Providers, tmp_path: Path
) -> None:
    bob_id = user("bob")
    token = f"fcm-registration-token-{next(_numbers):08d}"
    await away_with_token(stack, bob_id, tmp_path / "bob-phone", PushToken.fcm(token))
    alice = await started(stack, user("alice"), tmp_path / "alice", tone=440)
    bob = build(stack, bob_id, tmp_path / "bob-fresh", tone=880)
    try:
        call = alice.call(bob_id, greeting="hi there")
        await eventually(lambda: _pushed(providers.fcm, token), 10, "the FCM push")
        push = providers.fcm.pushes_to(token)[0]
        assert push.kind == "call" and push.body["message"]["android"]["priority"] == "high"
        # A managed push: the caller's app is not asked to push (no pairs for it).
        assert await pairs_for(alice, call) == []

        result = await bob.client.relay_remote_push_notification_payload(push.payload)
        assert result.is_valid and result.is_call and not result.is_message
        assert result.call_result is not None
        assert result.call_result.call_id == call.call_id
        assert result.call_result.remote_user_id == alice.client.user_id
        assert result.call_result.headers == {"greeting": "hi there"}
        assert not result.call_result.is_timed_out and not result.call_result.is_call_canceled
        incoming = await bob.next_incoming(1, timeout=10)
        assert incoming.call_id == call.call_id
        await incoming.answer()
        await call.wait_established(10)
        assert abs(dominant_hz(await received_audio(incoming, 0.6)) - 440) <= 5
        assert abs(dominant_hz(await received_audio(call, 0.6)) - 880) <= 5
        await call.hangup()
    finally:
        await asyncio.gather(alice.client.terminate(), bob.client.terminate())


@bounded(90)
async def test_app_server_push_gives_the_caller_a_pair_per_device_and_a_relay_connects(
    stack: E2EStack, tmp_path: Path
) -> None:
    bob_id = user("bob")
    await away_with_data(stack, bob_id, tmp_path / "phone", b"bob's phone")
    await away_with_data(stack, bob_id, tmp_path / "tablet", b"bob's tablet")
    alice = await started(stack, user("alice"), tmp_path / "alice")
    bob = build(stack, bob_id, tmp_path / "fresh")
    try:
        call = alice.call(bob_id)
        pairs = await pairs_for(alice, call)
        assert sorted(p.push_data for p in pairs) == [b"bob's phone", b"bob's tablet"]
        assert all(p.push_payload.startswith(b"p1.") for p in pairs)
        result = await bob.client.relay_remote_push_notification_payload(pairs[1].push_payload)
        assert result.is_valid and result.is_call and result.call_result is not None
        incoming = await bob.next_incoming(1, timeout=10)
        await incoming.answer()
        await call.wait_established(10)
        assert "progressing" in alice.heard(call)
        await call.hangup()
    finally:
        await asyncio.gather(alice.client.terminate(), bob.client.terminate())


@bounded(90)
async def test_timed_out_and_canceled_calls_say_so_when_relayed(
    stack: E2EStack, tmp_path: Path
) -> None:
    bob_id = user("bob")
    await away_with_data(stack, bob_id, tmp_path / "phone", b"phone")
    alice = await started(stack, user("alice"), tmp_path / "alice")
    bob = build(stack, bob_id, tmp_path / "fresh")
    try:
        canceled = alice.call(bob_id)
        canceled_payload = (await pairs_for(alice, canceled))[0].push_payload
        await canceled.hangup()
        assert (await canceled.wait_ended(5)).end_cause is CallEndCause.CANCELED

        unanswered = alice.call(bob_id, video=True)
        late_payload = (await pairs_for(alice, unanswered))[0].push_payload
        details = await unanswered.wait_ended(RINGING_SECONDS + 5)
        assert details.end_cause is CallEndCause.NO_ANSWER

        result = await bob.client.relay_remote_push_notification_payload(canceled_payload)
        assert result.is_valid and result.call_result is not None
        assert result.call_result.is_call_canceled and not result.call_result.is_timed_out
        result = await bob.client.relay_remote_push_notification_payload(late_payload)
        assert result.is_valid and result.call_result is not None
        assert result.call_result.is_timed_out and not result.call_result.is_call_canceled
        assert result.call_result.is_video_offered
        await asyncio.sleep(0.5)
        assert bob.incoming == []  # neither call rang
    finally:
        await asyncio.gather(alice.client.terminate(), bob.client.terminate())


@bounded(90)
async def test_messages_push_through_web_push_and_to_the_senders_app(
    stack: E2EStack, providers: Providers, database: str, tmp_path: Path
) -> None:
    carol_id, dave_id = user("carol"), user("dave")
    subscription = providers.web_push.subscribe(providers.vapid.public_key)
    await away_with_token(
        stack, carol_id, tmp_path / "carol-browser", PushToken.web_push(subscription)
    )
    await away_with_data(stack, dave_id, tmp_path / "dave-phone", b"dave's phone")
    alice = build(stack, user("alice"), tmp_path / "alice")
    alice_inbox = listen(alice.client)
    await alice.client.start()
    carol = build(stack, carol_id, tmp_path / "carol-fresh")
    carol_inbox = listen(carol.client)
    try:
        sent = alice.client.message_client.send(WritableMessage([carol_id, dave_id], "wake up"))
        await eventually(lambda: _pushed(providers.web_push, subscription), 10, "the Web Push push")
        push = providers.web_push.pushes_to(subscription)[0]
        assert push.kind == "message" and push.headers["content-encoding"] == "aes128gcm"
        # Dave has no managed push: alice's app gets his pair; carol's went by Web Push.
        await eventually(lambda: _true(len(alice_inbox.push) == 1), 5, "on_should_send_push_data")
        message, pairs = alice_inbox.push[0]
        assert message.message_id == sent.message_id
        assert [p.push_data for p in pairs] == [b"dave's phone"]

        result = await carol.client.relay_remote_push_notification_payload(push.payload)
        assert result.is_valid and result.is_message and not result.is_call
        assert result.message_result is not None
        assert result.message_result.message_id == sent.message_id
        assert result.message_result.sender_id == alice.client.user_id
        await eventually(lambda: _true(len(carol_inbox.incoming) == 1), 10, "the message")
        assert carol_inbox.incoming[0].text_body == "wake up"
    finally:
        await asyncio.gather(alice.client.terminate(), carol.client.terminate())


@bounded(90)
async def test_a_dead_apns_token_is_forgotten_and_bad_input_is_refused(
    stack: E2EStack, providers: Providers, database: str, tmp_path: Path
) -> None:
    bob_id = user("bob")
    token = device_token()
    await away_with_token(stack, bob_id, tmp_path / "iphone", PushToken.apns(token))
    providers.apns.mark_dead(token)
    alice = await started(stack, user("alice"), tmp_path / "alice")
    eve = build(stack, user("eve"), tmp_path / "eve")
    try:
        rows = await device_rows(database, bob_id)
        assert [r["token"] for r in rows] == [token]
        call = alice.call(bob_id)

        async def forgotten() -> bool:
            return [r["token"] for r in await device_rows(database, bob_id)] == [None]

        await eventually(forgotten, 10, "the dead token forgotten")
        await call.hangup()

        # 1025 bytes of push data: refused by the client, and by the service for a raw frame.
        with pytest.raises(ParleyError) as refused:
            await eve.client.register_push_notification_data(b"x" * 1025)
        assert refused.value.code == "PAYLOAD_TOO_LARGE"
        raw_id = user("raw")
        raw = await RawClient.open(stack.ws("gateway-a"))
        try:
            await raw.hello(await stack.access_token(raw_id), stack.app_key, raw_id)
            seq = await raw.send(register_push_data=push_pb.RegisterPushData(push_data=b"x" * 1025))
            error = await raw.expect_error(ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE, reply_to=seq)
            assert "1025" in error.reason and error.field == "push_data"
            seq = await raw.send(
                relay_push_payload=push_pb.RelayPushPayload(payload=b"not a payload")
            )
            error = await raw.expect_error(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, reply_to=seq)
            assert "not a valid push payload" in error.reason
        finally:
            await raw.close()
        assert await device_rows(database, raw_id) == []
        await eve.client.register_push_notification_data(b"x" * 1024)

        # A forged payload, an altered one, and one for another user: not valid, and why.
        forged = await eve.client.relay_remote_push_notification_payload(b"p1.AAAA.BBBB")
        assert not forged.is_valid and forged.error is not None
        assert forged.error.code == "INVALID_SIGNATURE"
        bob_payload = await _payload_for(stack, alice, bob_id, tmp_path)
        head, body, mac = bob_payload.split(b".")
        altered = b".".join([head, body[:-2] + (b"AA" if body[-2:] != b"AA" else b"BB"), mac])
        result = await eve.client.relay_remote_push_notification_payload(altered)
        assert not result.is_valid and result.error is not None
        assert result.error.code == "INVALID_SIGNATURE"
        result = await eve.client.relay_remote_push_notification_payload(bob_payload)
        assert not result.is_valid and result.error is not None
        assert result.error.code == "PERMISSION_DENIED"
    finally:
        await asyncio.gather(alice.client.terminate(), eve.client.terminate())


async def _payload_for(stack: E2EStack, alice: Party, user_id: str, tmp_path: Path) -> bytes:
    await away_with_data(stack, user_id, tmp_path / f"pairs-{next(_numbers)}", b"data")
    call = alice.call(user_id)
    pairs = await pairs_for(alice, call)
    await call.hangup()
    return bytes(pairs[0].push_payload)


async def pairs_for(caller: Party, call: Any) -> list[PushPair]:
    """The push pairs the caller's app was given for `call` (once it was asked to push)."""
    await eventually(lambda: _heard(caller, call, "push"), 5, "the push callback")
    return list(caller.events[call.call_id].push_pairs[0])


async def _pushed(fake: Any, token: str) -> bool:
    return bool(fake.pushes_to(token))


async def _heard(party: Party, call: Any, what: str) -> bool:
    return what in party.heard(call)


async def _true(value: bool) -> bool:
    return value


@bounded(120)
async def test_a_push_waiting_out_an_outage_survives_a_killed_push_service(
    stack: E2EStack, providers: Providers, tmp_path: Path
) -> None:
    bob_id = user("bob")
    token = f"fcm-registration-token-{next(_numbers):08d}"
    await away_with_token(stack, bob_id, tmp_path / "bob-phone", PushToken.fcm(token))
    alice = await started(stack, user("alice"), tmp_path / "alice")
    providers.fcm.start_outage(retry_after=0.5)
    try:
        before = providers.fcm.requests
        call = alice.call(bob_id)
        await eventually(
            lambda: _true(providers.fcm.requests >= before + 2), 10, "attempts during the outage"
        )
        stack.kill("push")  # SIGKILL with the job unsent; the supervisor starts it again
        providers.fcm.end_outage()
        await eventually(lambda: _pushed(providers.fcm, token), 30, "the push after the crash")
        await asyncio.sleep(1)
        assert len(providers.fcm.pushes_to(token)) == 1
        await call.hangup()
    finally:
        providers.fcm.end_outage()
        await alice.client.terminate()
