"""Instant messages end to end: reference clients, auth, two gateway replicas and the
messaging service as processes, real NATS and PostgreSQL. Every callback is checked with its
fields; user IDs hold spaces, dots, `*` and `>`; bad input is refused by the service itself
(raw frames past the client's own checks) and leaves nothing in the database."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from parley_client import ErrorType, ParleyClient, ParleyError, WritableMessage
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import messaging as messaging_pb
from tests.support.messaging import Inbox, listen, settle
from tests.support.wire import RawClient, bounded, eventually

from .stack import E2EStack, make_client, messaging_def, start_stack

RETENTION_DAYS = 30


@pytest_asyncio.fixture(scope="module")
async def database(
    postgres_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> str:
    home = tmp_path_factory.mktemp("msgdb")
    return await postgres_server.create_database(f"e2e_msg_{home.name.replace('-', '_')[:30]}")


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_server: EmbeddedNats, database: str
) -> AsyncIterator[E2EStack]:
    home = tmp_path_factory.mktemp("messaging")
    running = await start_stack(
        home, nats_server.url, database, extra=[messaging_def(restart=True)]
    )
    try:
        yield running
    finally:
        await running.devstack.stop()


_numbers = itertools.count()


def user(name: str) -> str:
    """A fresh user ID per test holding a space, a dot, `*` and `>`."""
    return f"{name} {next(_numbers)}.x*>"


Started = Callable[..., Awaitable[tuple[ParleyClient, Inbox]]]


@pytest_asyncio.fixture
async def started(stack: E2EStack, tmp_path: Path) -> AsyncIterator[Started]:
    """Start a client of `user_id` (a device of its own per `device`), listening."""
    clients: list[ParleyClient] = []

    async def start(user_id: str, device: str = "one") -> tuple[ParleyClient, Inbox]:
        state = tmp_path / f"{abs(hash(user_id))}-{device}"
        client = make_client(stack, user_id, state)
        inbox = listen(client)
        await client.start()
        client.start_listening_on_active_connection()
        clients.append(client)
        return client, inbox

    yield start
    await asyncio.gather(*(c.terminate() for c in clients), return_exceptions=True)


async def stored(database: str, message_id: str) -> int:
    conn = await asyncpg.connect(database)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM messaging.messages WHERE message_id = $1",
                uuid.UUID(message_id),
            )
        )
    finally:
        await conn.close()


@bounded(30)
async def test_one_to_one_every_callback_with_its_fields(started: Started) -> None:
    alice_id, bob_id = user("alice"), user("bob")
    alice, alice_inbox = await started(alice_id)
    _bob, bob_inbox = await started(bob_id)

    sent = alice.message_client.send(WritableMessage(bob_id, "Hello, Bob!", {"x-topic": "hi"}))
    assert sent.sender_id == alice_id and sent.recipient_ids == (bob_id,)

    await bob_inbox.wait("incoming", 1)
    got = bob_inbox.incoming[0]
    assert got.message_id == sent.message_id
    assert (got.sender_id, got.recipient_ids, got.text_body) == (alice_id, (bob_id,), "Hello, Bob!")
    assert dict(got.headers) == {"x-topic": "hi"}
    assert abs(got.timestamp - sent.timestamp) < 5

    await alice_inbox.wait("sent", 1)
    await alice_inbox.wait("delivered", 1)
    message, recipient = alice_inbox.sent[0]
    assert (message.message_id, recipient) == (sent.message_id, bob_id)
    assert message.timestamp == got.timestamp  # the service's time, on both sides
    delivered = alice_inbox.delivered[0]
    assert (delivered.message_id, delivered.recipient_id) == (sent.message_id, bob_id)
    assert delivered.timestamp >= got.timestamp
    await settle()
    assert len(bob_inbox.incoming) == 1 and len(alice_inbox.sent) == 1
    assert len(alice_inbox.delivered) == 1
    assert alice_inbox.failed == [] and alice_inbox.push == []
    assert bob_inbox.sent == [] and bob_inbox.delivered == []


@bounded(40)
async def test_many_recipients_on_many_devices(started: Started) -> None:
    """The sender on two devices, one recipient on two: each device of a recipient gets the
    message once; each device of the sender hears sent and delivered once per recipient."""
    alice_id, bob_id, carol_id = user("alice"), user("bob"), user("carol")
    alice_phone, phone_inbox = await started(alice_id, "phone")
    _alice_laptop, laptop_inbox = await started(alice_id, "laptop")
    _bob, bob_inbox = await started(bob_id)
    _carol_phone, carol_phone_inbox = await started(carol_id, "phone")
    _carol_laptop, carol_laptop_inbox = await started(carol_id, "laptop")

    sent = alice_phone.message_client.send(WritableMessage([bob_id, carol_id], "Team meeting"))

    for inbox in (bob_inbox, carol_phone_inbox, carol_laptop_inbox):
        await inbox.wait("incoming", 1)
        assert inbox.incoming[0].recipient_ids == (bob_id, carol_id)
    for inbox in (phone_inbox, laptop_inbox):
        await inbox.wait("sent", 2)
        await inbox.wait("delivered", 2)
    await settle()
    expected = {(sent.message_id, bob_id): 1, (sent.message_id, carol_id): 1}
    for inbox in (phone_inbox, laptop_inbox):
        assert dict(inbox.sent_pairs()) == expected
        assert dict(inbox.delivered_pairs()) == expected
    for inbox in (bob_inbox, carol_phone_inbox, carol_laptop_inbox):
        assert inbox.incoming_ids() == [sent.message_id]
    # The sender's own other device does not get it as incoming.
    assert laptop_inbox.incoming == [] and phone_inbox.incoming == []


@bounded(40)
async def test_offline_recipient_gets_history_in_order_once(
    stack: E2EStack, started: Started, tmp_path: Path
) -> None:
    alice_id, dave_id = user("alice"), user("dave")
    alice, alice_inbox = await started(alice_id)
    dave = make_client(stack, dave_id, tmp_path / "dave")
    await dave.start()  # dave's device registers, then goes away
    await dave.terminate()

    texts = [f"note {i}" for i in range(5)]
    ids = [alice.message_client.send(WritableMessage(dave_id, text)).message_id for text in texts]
    await alice_inbox.wait("sent", 5)
    await alice_inbox.wait("push", 5)  # nobody online: the app may push (no pairs yet)
    assert [m.message_id for m, _ in alice_inbox.push] == ids
    assert alice_inbox.delivered == []

    dave = make_client(stack, dave_id, tmp_path / "dave")  # the same device starts again
    dave_inbox = listen(dave)
    await dave.start()
    try:
        await dave_inbox.wait("incoming", 5)
        await alice_inbox.wait("delivered", 5)
        await settle()
        assert dave_inbox.incoming_ids() == ids
        assert [m.text_body for m in dave_inbox.incoming] == texts
        assert sorted(d.message_id for d in alice_inbox.delivered) == sorted(ids)
    finally:
        await dave.terminate()

    # A restart of the same device shows none of them again.
    dave = make_client(stack, dave_id, tmp_path / "dave")
    again = listen(dave)
    await dave.start()
    try:
        await settle(1.0)
        assert again.incoming == []
    finally:
        await dave.terminate()


@bounded(30)
async def test_read_receipts_and_typing(started: Started) -> None:
    alice_id, bob_id = user("alice"), user("bob")
    alice, alice_inbox = await started(alice_id)
    bob, bob_inbox = await started(bob_id)
    bob.message_client.set_typing_indicators(True)

    await alice.message_client.send_typing(bob_id, True)
    await bob_inbox.wait("typing", 1)
    assert bob_inbox.typing == [(alice_id, True)]

    sent = alice.message_client.send(WritableMessage(bob_id, "read me"))
    await bob_inbox.wait("incoming", 1)
    await bob.message_client.mark_read([sent.message_id])
    await alice_inbox.wait("read", 1)
    read = alice_inbox.read[0]
    assert (read.message_id, read.reader_id) == (sent.message_id, bob_id)


@bounded(30)
async def test_unknown_recipient_fails_permanently(started: Started, database: str) -> None:
    alice, alice_inbox = await started(user("alice"))
    nobody = user("nobody")
    sent = alice.message_client.send(WritableMessage(nobody, "anyone there?"))
    await alice_inbox.wait("failed", 1)
    message, info = alice_inbox.failed[0]
    assert (message.message_id, info.message_id, info.recipient_id) == (
        sent.message_id,
        sent.message_id,
        nobody,
    )
    assert info.error.error_code == ErrorCode.ERROR_CODE_NOT_FOUND
    assert info.error.type is not ErrorType.NETWORK
    assert alice_inbox.sent == []
    assert await stored(database, sent.message_id) == 0


async def test_the_client_refuses_what_it_cannot_send(started: Started) -> None:
    alice, _ = await started(user("alice"))
    bad = {
        "too many recipients": WritableMessage([user("r") for _ in range(11)], "hi"),
        "too long a text": WritableMessage(user("bob"), "x" * (64 * 1024 + 1)),
        "invalid user id": WritableMessage("", "hi"),
        "headers over the limit": WritableMessage(user("bob"), "hi", {"x-big": "y" * 1100}),
    }
    for what, message in bad.items():
        with pytest.raises(ParleyError) as raised:
            alice.message_client.send(message)
        assert raised.value.type is not ErrorType.NETWORK, what


@pytest_asyncio.fixture
async def raw(stack: E2EStack) -> AsyncIterator[RawClient]:
    """A signed-in raw client of a fresh user (bob is a registered recipient)."""
    me = user("mallory")
    token = await stack.access_token(me)
    client = await RawClient.open(stack.ws("gateway-a"))
    await client.hello(token, stack.app_key, me)
    try:
        yield client
    finally:
        await client.close()


@bounded(30)
async def test_the_service_refuses_bad_input_and_stores_nothing(
    stack: E2EStack, raw: RawClient, database: str
) -> None:
    bob_id = user("bob")
    await stack.access_token(bob_id)  # bob has registered
    cases = {
        "too many recipients": (
            messaging_pb.Message(recipient_ids=[bob_id] * 11, text="hi"),
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
        ),
        "too long a text": (
            messaging_pb.Message(recipient_ids=[bob_id], text="x" * (64 * 1024 + 1)),
            ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
        ),
        "unknown recipient": (
            messaging_pb.Message(recipient_ids=[user("nobody")], text="hi"),
            ErrorCode.ERROR_CODE_NOT_FOUND,
        ),
        "invalid user id": (
            messaging_pb.Message(recipient_ids=["bad\x00id"], text="hi"),
            ErrorCode.ERROR_CODE_INVALID_USER_ID,
        ),
        "headers over the limit": (
            messaging_pb.Message(recipient_ids=[bob_id], text="hi", headers={"x-a": "b" * 1100}),
            ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
        ),
    }
    fields = {
        "too many recipients": "recipient_ids",
        "too long a text": "text",
        "unknown recipient": "recipient_ids[0]",
        "invalid user id": "recipient_ids[0]",
        "headers over the limit": "headers",
    }
    for what, (message, code) in cases.items():
        message.message_id = str(uuid.uuid4())
        seq = await raw.send(send_message=messaging_pb.SendMessage(message=message))
        error = await raw.expect_error(code, reply_to=seq)
        assert error.reason, what
        assert error.field == fields[what], (what, error.field)
        assert await stored(database, message.message_id) == 0, what


@bounded(30)
async def test_users_see_only_their_own_messages(
    stack: E2EStack, started: Started, raw: RawClient
) -> None:
    alice_id, bob_id = user("alice"), user("bob")
    alice, _ = await started(alice_id)
    _bob, bob_inbox = await started(bob_id)
    sent = alice.message_client.send(WritableMessage(bob_id, "for bob only"))
    await bob_inbox.wait("incoming", 1)

    fetched = await raw.request(fetch_messages=messaging_pb.FetchMessages())
    assert list(fetched.message_batch.messages) == []
    for body in ("ack_messages", "mark_read"):
        kind = messaging_pb.AckMessages if body == "ack_messages" else messaging_pb.MarkRead
        reply = await raw.request(**{body: kind(message_ids=[sent.message_id])})
        assert reply.messages_acked.count == 0, body
    # Reusing another user's message id is refused, not taken as a retry.
    seq = await raw.send(
        send_message=messaging_pb.SendMessage(
            message=messaging_pb.Message(
                message_id=sent.message_id, recipient_ids=[bob_id], text="x"
            )
        )
    )
    await raw.expect_error(ErrorCode.ERROR_CODE_PERMISSION_DENIED, reply_to=seq)


@bounded(60)
async def test_messages_sent_while_the_service_is_down_go_out_once_it_is_back(
    stack: E2EStack, started: Started
) -> None:
    """kill -9 of the messaging service: sends taken meanwhile wait in the outbox (a NETWORK
    error is retried) and go out once the supervisor has restarted it; each arrives once."""
    alice_id, bob_id = user("alice"), user("bob")
    alice, alice_inbox = await started(alice_id)
    _bob, bob_inbox = await started(bob_id)
    before = stack.devstack.supervisor.status("messaging").starts
    stack.kill("messaging")
    ids = [
        alice.message_client.send(WritableMessage(bob_id, f"later {i}")).message_id
        for i in range(3)
    ]

    async def restarted() -> bool:
        status = stack.devstack.supervisor.status("messaging")
        return status.starts > before

    await eventually(restarted, 20, "the messaging service restarted")
    await bob_inbox.wait("incoming", 3, timeout=40)
    await alice_inbox.wait("delivered", 3, timeout=40)
    await settle()
    assert sorted(bob_inbox.incoming_ids()) == sorted(ids)
    assert alice_inbox.failed == []
    assert sorted(alice_inbox.delivered_pairs()) == sorted((i, bob_id) for i in ids)


def test_message_ids_of_a_retry_are_new() -> None:
    """The guide's resend after a NETWORK failure: a new message with a new id."""
    first = WritableMessage(["bob"], "hi", {"x-a": "1"})
    again = WritableMessage.from_message(first)
    assert again.message_id != first.message_id
    assert (again.recipient_ids, again.text_body, again.headers) == (["bob"], "hi", {"x-a": "1"})
