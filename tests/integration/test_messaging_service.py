"""The messaging service in process, with auth and a gateway on real NATS and PostgreSQL,
spoken to by raw WebSocket devices (and, for many concurrent sends, through its handlers):
sends stored and told, retries, refusals that store nothing, acknowledgements and reads
told once, fetch with paging, who may touch which message, typing, the retention purge, the
redelivery sweeper, and sends grouped into few commits."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from parley.v1 import messaging_pb2, options_pb2
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_messaging import commits
from parley_messaging.app import MIGRATIONS, handlers_of, purger_of, redeliverer_of, writer_of
from parley_messaging.app import setup as messaging_setup
from parley_messaging.settings import MessagingSettings
from parley_protocol.clock import Clock, FakeClock
from parley_protocol.errors import ErrorCode
from parley_service import runtime as rt
from parley_service.client_requests import Caller
from tests.integration.gateway_stack import App, People, Stack, module_stack, unique_user
from tests.support.wire import SignedInDevice, bounded

E = ErrorCode
M = messaging_pb2


class Device(SignedInDevice):
    """One signed-in device with the messaging service's requests."""

    async def send(
        self, recipients: list[str], text: str = "hi", message_id: str | None = None, **fields: Any
    ) -> M.MessageAccepted:
        message = M.Message(
            message_id=message_id or str(uuid.uuid4()),
            recipient_ids=recipients,
            text=text,
            **fields,
        )
        return (await self.ok(send_message=M.SendMessage(message=message))).message_accepted

    async def ack(self, ids: list[str]) -> int:
        return (await self.ok(ack_messages=M.AckMessages(message_ids=ids))).messages_acked.count

    async def read(self, ids: list[str]) -> int:
        return (await self.ok(mark_read=M.MarkRead(message_ids=ids))).messages_acked.count

    async def fetch(self, limit: int = 0) -> M.MessageBatch:
        return (await self.ok(fetch_messages=M.FetchMessages(limit=limit))).message_batch


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> AsyncIterator[Stack]:
    async with module_stack(nats_server.url, postgres_server, "test_messaging") as s:
        yield s


@asynccontextmanager
async def messaging_service(
    nats_url: str, database_url: str, clock: Clock | None = None, **values: Any
) -> AsyncIterator[rt.Runtime]:
    settings: dict[str, Any] = {
        "nats_url": nats_url,
        "database_url": database_url,
        "health_port": 0,
        "drain_timeout_seconds": 2.0,
        # The tests run the sweeper's rounds themselves, at the times they choose.
        "message_redeliver_seconds": 3600.0,
        "message_redeliver_after_seconds": 3.0,
    }
    settings.update(values)
    runtime = await rt.start(MessagingSettings(**settings), messaging_setup, MIGRATIONS, clock)
    try:
        yield runtime
    finally:
        await rt.stop(runtime, drain=False)


@pytest_asyncio.fixture
async def messaging(nats_server: EmbeddedNats, database_url: str) -> AsyncIterator[rt.Runtime]:
    async with messaging_service(nats_server.url, database_url) as runtime:
        yield runtime


@pytest_asyncio.fixture
async def people(stack: Stack, app: App) -> AsyncIterator[People[Device]]:
    found = People(stack, app, Device)
    try:
        yield found
    finally:
        await found.close()


_user = unique_user


async def _count(runtime: rt.Runtime, table: str) -> int:
    value: int = await runtime.db.fetchval(f"SELECT count(*) FROM messaging.{table}")
    return value


async def _told_at(runtime: rt.Runtime, message_id: str) -> Any:
    return await runtime.db.fetchval(
        "SELECT told_at FROM messaging.messages WHERE message_id = $1", uuid.UUID(message_id)
    )


async def _store_untold(
    runtime: rt.Runtime, app: App, sender: str, recipients: list[str], text: str = "stored"
) -> tuple[str, int]:
    """A message committed as a send commits it, whose events were never published (the
    replica died in between)."""
    message_id = str(uuid.uuid4())
    sent_at_ms = int(time.time() * 1000)
    flush = commits.flush_by(runtime.db, commits.write_messages, 5.0, "messages", transaction=False)
    [stored] = await flush(
        [
            commits.NewMessage(
                app.key, uuid.UUID(message_id), sender, tuple(recipients), text, {}, sent_at_ms
            )
        ]
    )
    assert isinstance(stored, commits.Stored) and stored.created
    return message_id, sent_at_ms


# -- sends ---------------------------------------------------------------------------------


@bounded(30)
async def test_a_send_is_stored_and_told_to_the_recipients_and_the_sender(
    people: People[Device], messaging: rt.Runtime
) -> None:
    alice, bob, carol = _user("alice"), _user("bob"), _user("carol")
    a = await people.device(alice)
    a2 = await people.device(alice)
    b = await people.device(bob)
    c = await people.device(carol)
    message_id = str(uuid.uuid4())
    accepted = await a.send([bob, carol], "hello", message_id, headers={"k": "v"})
    assert accepted.message_id == message_id and accepted.timestamp_ms > 0
    assert list(accepted.offline) == []
    for device in (b, c):
        got = (await device.event("message_incoming")).message_incoming.message
        assert (got.message_id, got.sender_id, got.text) == (message_id, alice, "hello")
        assert list(got.recipient_ids) == [bob, carol] and dict(got.headers) == {"k": "v"}
        assert got.timestamp_ms == accepted.timestamp_ms
    # Every other device of the sender; the sending one has its reply.
    sent = (await a2.event("message_sent")).message_sent.message
    assert sent.message_id == message_id and sent.sender_id == alice
    await a.quiet("message_sent", 0.1)
    assert await _count(messaging, "messages") == 1
    assert await _count(messaging, "recipients") == 2
    assert await _told_at(messaging, message_id) is not None


@bounded(30)
async def test_a_recipient_with_no_device_online_is_offline_in_the_reply(
    people: People[Device], messaging: rt.Runtime, stack: Stack, app: App
) -> None:
    alice, dave = _user("alice"), _user("dave")
    await stack.register(app, dave)  # registered, never connected
    a = await people.device(alice)
    accepted = await a.send([dave])
    assert [p.recipient_id for p in accepted.offline] == [dave]


@bounded(30)
async def test_a_retried_send_is_answered_from_the_store_and_tells_nothing_again(
    people: People[Device], messaging: rt.Runtime
) -> None:
    alice, bob, eve = _user("alice"), _user("bob"), _user("eve")
    a = await people.device(alice)
    b = await people.device(bob)
    e = await people.device(eve)
    message_id = str(uuid.uuid4())
    first = await a.send([bob], "once", message_id)
    await b.event("message_incoming")
    again = await a.send([bob], "once", message_id)
    assert again.timestamp_ms == first.timestamp_ms and again.message_id == message_id
    await b.quiet("message_incoming")
    await a.quiet("message_sent", 0.1)
    assert await _count(messaging, "messages") == 1
    # The same id from another sender is not theirs.
    err = await e.refused(
        E.ERROR_CODE_PERMISSION_DENIED,
        send_message=M.SendMessage(
            message=M.Message(message_id=message_id, recipient_ids=[bob], text="mine")
        ),
    )
    assert err.field == "message_id"
    await b.quiet("message_incoming", 0.2)
    assert await _count(messaging, "messages") == 1


@bounded(30)
async def test_a_retried_send_of_a_message_never_told_tells_what_was_stored(
    people: People[Device], messaging: rt.Runtime, app: App
) -> None:
    alice, bob = _user("alice"), _user("bob")
    a = await people.device(alice)
    b = await people.device(bob)
    message_id, sent_at_ms = await _store_untold(messaging, app, alice, [bob], "first text")
    assert await _told_at(messaging, message_id) is None
    accepted = await a.send([bob], "first text", message_id)
    assert accepted.timestamp_ms == sent_at_ms
    got = (await b.event("message_incoming")).message_incoming.message
    assert (got.message_id, got.text, got.timestamp_ms) == (message_id, "first text", sent_at_ms)
    assert await _told_at(messaging, message_id) is not None


@bounded(30)
async def test_refused_sends_store_nothing(
    people: People[Device], stack: Stack, app: App, nats_server: EmbeddedNats, database_url: str
) -> None:
    async with messaging_service(
        nats_server.url, database_url, message_max_recipients=3, message_max_text_bytes=1000
    ) as messaging:
        await _refused_sends_store_nothing(people, stack, app, messaging)


async def _refused_sends_store_nothing(
    people: People[Device], stack: Stack, app: App, messaging: rt.Runtime
) -> None:
    alice, bob = _user("alice"), _user("bob")
    await stack.register(app, bob)
    a = await people.device(alice)

    async def refused(code: int, field: str, **message: Any) -> None:
        message.setdefault("message_id", str(uuid.uuid4()))
        message.setdefault("recipient_ids", [bob])
        message.setdefault("text", "x")
        err = await a.refused(code, send_message=M.SendMessage(message=M.Message(**message)))
        assert err.field == field, err

    many = [_user("r") for _ in range(4)]
    await refused(E.ERROR_CODE_INVALID_ARGUMENT, "recipient_ids", recipient_ids=many)
    await refused(E.ERROR_CODE_INVALID_ARGUMENT, "recipient_ids", recipient_ids=[])
    await refused(E.ERROR_CODE_INVALID_ARGUMENT, "recipient_ids", recipient_ids=[bob, bob])
    await refused(E.ERROR_CODE_PAYLOAD_TOO_LARGE, "text", text="é" * 501)
    nobody = _user("nobody")
    await refused(E.ERROR_CODE_NOT_FOUND, "recipient_ids[1]", recipient_ids=[bob, nobody])
    await refused(E.ERROR_CODE_INVALID_USER_ID, "recipient_ids[0]", recipient_ids=["tab\tid"])
    await refused(E.ERROR_CODE_INVALID_USER_ID, "recipient_ids[0]", recipient_ids=[""])
    await refused(E.ERROR_CODE_INVALID_USER_ID, "recipient_ids[0]", recipient_ids=["x" * 41])
    await refused(E.ERROR_CODE_INVALID_ARGUMENT, "message_id", message_id="not-a-uuid")
    headers = {f"h{i}": "v" * 100 for i in range(200)}
    await refused(E.ERROR_CODE_PAYLOAD_TOO_LARGE, "headers", headers=headers)
    await refused(E.ERROR_CODE_INVALID_HEADER, "headers", headers={"": "v"})
    for table in ("messages", "recipients", "device_acks"):
        assert await _count(messaging, table) == 0, table


# -- acknowledgements, reads, fetch --------------------------------------------------------


@bounded(30)
async def test_the_first_ack_of_a_recipient_makes_the_message_delivered_once(
    people: People[Device], messaging: rt.Runtime
) -> None:
    alice, bob = _user("alice"), _user("bob")
    a = await people.device(alice)
    b1 = await people.device(bob)
    b2 = await people.device(bob)
    accepted = await a.send([bob])
    await b1.event("message_incoming")
    await b2.event("message_incoming")
    results = await asyncio.gather(b1.ack([accepted.message_id]), b2.ack([accepted.message_id]))
    assert results == [1, 1]
    delivered = (await a.event("message_delivered")).message_delivered
    assert (delivered.message_id, delivered.recipient_id) == (accepted.message_id, bob)
    assert delivered.timestamp_ms > 0
    await a.quiet("message_delivered")
    assert await _count(messaging, "device_acks") == 2
    told = await messaging.db.fetchval(
        "SELECT delivered_told_at FROM messaging.recipients WHERE recipient_id = $1", bob
    )
    assert told is not None
    # Again: nothing new.
    assert await b1.ack([accepted.message_id]) == 1
    await a.quiet("message_delivered", 0.3)


@bounded(30)
async def test_fetch_gives_what_this_device_has_not_acknowledged_in_order_with_paging(
    people: People[Device], messaging: rt.Runtime, stack: Stack, app: App
) -> None:
    alice, bob = _user("alice"), _user("bob")
    await stack.register(app, bob)
    a = await people.device(alice)
    ids = [(await a.send([bob], f"m{i}")).message_id for i in range(3)]
    b = await people.device(bob)
    first = await b.fetch(limit=2)
    assert [m.message_id for m in first.messages] == ids[:2] and first.more
    assert [m.text for m in first.messages] == ["m0", "m1"]
    assert all(m.sender_id == alice for m in first.messages)
    assert await b.ack([m.message_id for m in first.messages]) == 2
    rest = await b.fetch(limit=2)
    assert [m.message_id for m in rest.messages] == ids[2:] and not rest.more
    # Another device of bob has acknowledged nothing yet.
    other = await people.device(bob)
    assert [m.message_id for m in (await other.fetch()).messages] == ids


@bounded(30)
async def test_another_user_cannot_ack_read_or_fetch_someone_elses_messages(
    people: People[Device], messaging: rt.Runtime
) -> None:
    alice, bob, mallory = _user("alice"), _user("bob"), _user("mallory")
    a = await people.device(alice)
    await people.device(bob)
    m = await people.device(mallory)
    accepted = await a.send([bob])
    assert await m.ack([accepted.message_id]) == 0
    assert await m.read([accepted.message_id]) == 0
    assert list((await m.fetch()).messages) == []
    # Nor does the sender acknowledge its own message for the recipient.
    assert await a.ack([accepted.message_id]) == 0
    await a.quiet("message_delivered")
    await a.quiet("message_read", 0.1)
    assert await _count(messaging, "device_acks") == 0
    delivered = await messaging.db.fetchval(
        "SELECT delivered_at FROM messaging.recipients WHERE recipient_id = $1", bob
    )
    assert delivered is None
    err = await m.refused(
        E.ERROR_CODE_INVALID_ARGUMENT, ack_messages=M.AckMessages(message_ids=["nope"])
    )
    assert err.field == "message_ids[0]"


@bounded(30)
async def test_mark_read_tells_the_sender_read_and_delivered_once(
    people: People[Device], messaging: rt.Runtime
) -> None:
    alice, bob = _user("alice"), _user("bob")
    a = await people.device(alice)
    b = await people.device(bob)
    accepted = await a.send([bob])
    await b.event("message_incoming")
    assert await b.read([accepted.message_id]) == 1
    read = (await a.event("message_read")).message_read
    assert (read.message_id, read.reader_id) == (accepted.message_id, bob)
    delivered = (await a.event("message_delivered")).message_delivered
    assert delivered.recipient_id == bob
    assert await b.read([accepted.message_id]) == 1
    await a.quiet("message_read")
    row = await messaging.db.fetchrow(
        "SELECT read_at, read_told_at, delivered_told_at FROM messaging.recipients"
    )
    assert None not in tuple(row)


@bounded(30)
async def test_typing_is_told_to_the_other_users_devices(
    people: People[Device], messaging: rt.Runtime
) -> None:
    alice, bob = _user("alice"), _user("bob")
    a = await people.device(alice)
    b = await people.device(bob)
    reply = await a.ok(send_typing=M.SendTyping(recipient_id=bob, typing=True))
    assert reply.messages_acked.count == 1
    typing = (await b.event("typing_changed")).typing_changed
    assert (typing.sender_id, typing.typing) == (alice, True)
    await a.refused(E.ERROR_CODE_INVALID_USER_ID, send_typing=M.SendTyping(recipient_id=""))
    assert await _count(messaging, "messages") == 0


# -- retention -----------------------------------------------------------------------------


@bounded(30)
async def test_the_purge_removes_only_messages_past_the_retention_time(
    people: People[Device], nats_server: EmbeddedNats, database_url: str
) -> None:
    clock = FakeClock(start=time.time())
    async with messaging_service(
        nats_server.url, database_url, clock, message_retention_days=1
    ) as runtime:
        alice, bob = _user("alice"), _user("bob")
        a = await people.device(alice)
        b = await people.device(bob)
        old = await a.send([bob], "old")
        await b.ack([old.message_id])
        clock.advance(3600)
        new = await a.send([bob], "new")
        assert await purger_of(runtime).purge(clock.time()) == 0
        clock.advance(86_400 - 1800)  # the old one is past a day, the new one is not
        assert await purger_of(runtime).purge() == 1
        texts = await runtime.db.fetch("SELECT text FROM messaging.messages")
        assert [r["text"] for r in texts] == ["new"]
        assert await _count(runtime, "recipients") == 1
        assert await _count(runtime, "device_acks") == 0
        # Past the retention time a message is no longer fetched either.
        assert [m.message_id for m in (await b.fetch()).messages] == [new.message_id]


# -- the redelivery sweeper ----------------------------------------------------------------


@bounded(30)
async def test_the_sweeper_tells_a_message_committed_but_never_told(
    people: People[Device], messaging: rt.Runtime, app: App
) -> None:
    alice, bob = _user("alice"), _user("bob")
    a = await people.device(alice)
    b = await people.device(bob)
    message_id, _ = await _store_untold(messaging, app, alice, [bob], "lost in a crash")
    sweeper = redeliverer_of(messaging)
    # Not before redeliver_after: its send may still be publishing.
    assert (await sweeper.redeliver(time.time())).messages == 0
    done = await sweeper.redeliver(time.time() + 5)
    assert (done.messages, done.incoming) == (1, 0)
    got = (await b.event("message_incoming")).message_incoming.message
    assert (got.message_id, got.text) == (message_id, "lost in a crash")
    assert (await a.event("message_sent")).message_sent.message.message_id == message_id
    assert await _told_at(messaging, message_id) is not None
    assert (await sweeper.redeliver(time.time() + 5)).messages == 0
    await b.quiet("message_incoming", 0.3)


@bounded(30)
async def test_the_sweeper_tells_a_message_whose_publish_failed(
    people: People[Device], messaging: rt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = _user("alice"), _user("bob")
    a = await people.device(alice)
    b = await people.device(bob)
    events = handlers_of(messaging)._events

    async def broken(application_key: str, message: M.Message, users: list[str]) -> list[bool]:
        return [False for _ in users]

    with monkeypatch.context() as patch:
        patch.setattr(events, "incoming", broken)
        accepted = await a.send([bob], "published later")
    assert await _told_at(messaging, accepted.message_id) is None
    await b.quiet("message_incoming", 0.2)
    assert (await redeliverer_of(messaging).redeliver(time.time() + 5)).messages == 1
    got = (await b.event("message_incoming")).message_incoming.message
    assert got.message_id == accepted.message_id and got.timestamp_ms == accepted.timestamp_ms
    await a.event("message_sent")


@bounded(30)
async def test_the_sweeper_tells_an_undelivered_message_again_to_an_online_recipient(
    people: People[Device], messaging: rt.Runtime, stack: Stack, app: App
) -> None:
    alice, bob, dave = _user("alice"), _user("bob"), _user("dave")
    await stack.register(app, dave)  # never online
    a = await people.device(alice)
    b = await people.device(bob)
    accepted = await a.send([bob, dave])
    await b.event("message_incoming")
    sweeper = redeliverer_of(messaging)
    assert (await sweeper.redeliver(time.time())).incoming == 0  # just told
    now = time.time() + 5
    assert (await sweeper.redeliver(now)).incoming == 1  # bob only: dave is offline
    again = (await b.event("message_incoming")).message_incoming.message
    assert again.message_id == accepted.message_id
    assert (await sweeper.redeliver(now + 1)).incoming == 0  # retold a moment ago
    # It backs off: the next time only once it waited as long as it had since told (5 s).
    assert (await sweeper.redeliver(now + 4)).incoming == 0
    assert (await sweeper.redeliver(now + 6)).incoming == 1
    await b.event("message_incoming")
    assert (await sweeper.redeliver(now + 12)).incoming == 0  # now 11 s
    await b.ack([accepted.message_id])
    assert (await sweeper.redeliver(now + 20)).incoming == 0  # delivered now
    # Past the redelivery age nothing is told again.
    assert (await sweeper.redeliver(now + 700)).incoming == 0


@bounded(30)
async def test_the_sweeper_tells_receipts_that_were_recorded_but_never_told(
    people: People[Device], messaging: rt.Runtime, app: App
) -> None:
    alice, bob = _user("alice"), _user("bob")
    a = await people.device(alice)
    await people.device(bob)
    acked = await a.send([bob], "acked")
    read = await a.send([bob], "read")
    instance = uuid.uuid4()
    at_ms = int(time.time() * 1000)

    def request(message_id: str) -> commits.ReceiptRequest:
        return commits.ReceiptRequest(
            app.key, bob, instance, (uuid.UUID(message_id),), at_ms, at_ms - 86_400_000
        )

    acks = commits.flush_by(messaging.db, commits.write_acks, 5.0, "acks", transaction=True)
    reads = commits.flush_by(messaging.db, commits.write_reads, 5.0, "reads", transaction=True)
    [outcome] = await acks([request(acked.message_id)])
    assert len(outcome.delivered) == 1
    [outcome] = await reads([request(read.message_id)])
    assert (len(outcome.delivered), len(outcome.read)) == (1, 1)
    await a.quiet("message_delivered", 0.2)
    done = await redeliverer_of(messaging).redeliver(time.time() + 5)
    assert (done.delivered, done.read) == (2, 1)
    delivered = set()
    for _ in range(2):
        event = (await a.event("message_delivered")).message_delivered
        assert event.recipient_id == bob
        delivered.add(event.message_id)
    assert delivered == {acked.message_id, read.message_id}
    assert (await a.event("message_read")).message_read.message_id == read.message_id
    done = await redeliverer_of(messaging).redeliver(time.time() + 5)
    assert (done.delivered, done.read) == (0, 0)


@bounded(60)
async def test_two_replicas_sweeping_at_once_tell_each_message_once(
    people: People[Device],
    messaging: rt.Runtime,
    nats_server: EmbeddedNats,
    database_url: str,
    app: App,
) -> None:
    alice, bob = _user("alice"), _user("bob")
    await people.device(alice)
    await people.device(bob)
    for _ in range(40):
        await _store_untold(messaging, app, alice, [bob])
    async with messaging_service(nats_server.url, database_url) as other:
        now = time.time() + 5
        rounds = await asyncio.gather(
            redeliverer_of(messaging).redeliver(now), redeliverer_of(other).redeliver(now)
        )
    assert sum(r.messages for r in rounds) == 40
    untold = await messaging.db.fetchval(
        "SELECT count(*) FROM messaging.messages WHERE told_at IS NULL"
    )
    assert untold == 0


# -- group commit --------------------------------------------------------------------------


@bounded(60)
async def test_concurrent_sends_are_grouped_into_few_commits(
    messaging: rt.Runtime, stack: Stack, app: App
) -> None:
    alice, bob = _user("alice"), _user("bob")
    await stack.register(app, bob)
    handlers = handlers_of(messaging)
    writer = writer_of(messaging, "messages")
    caller = Caller(
        app.key,
        alice,
        str(uuid.uuid4()),
        "s1",
        "gw",
        "c1",
        frozenset({options_pb2.CAPABILITY_MESSAGING}),
    )
    batches, items = writer.batches, writer.items

    async def send(i: int) -> M.MessageAccepted:
        message = M.Message(message_id=str(uuid.uuid4()), recipient_ids=[bob], text=f"m{i}")
        return await handlers.send_message(caller, M.SendMessage(message=message))

    replies = await asyncio.gather(*(send(i) for i in range(200)))
    assert len({r.message_id for r in replies}) == 200
    assert writer.items - items == 200
    assert writer.batches - batches < 200
    assert await _count(messaging, "messages") == 200
    assert await _count(messaging, "recipients") == 200


async def test_database_rows_follow_the_schema(messaging: rt.Runtime) -> None:
    """The sweeper's partial indexes exist (its queries stay cheap as messages pile up)."""
    conn: asyncpg.Pool = messaging.db
    names = {
        r["indexname"]
        for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname='messaging'")
    }
    assert {
        "messages_untold_idx",
        "recipients_delivered_untold_idx",
        "recipients_read_untold_idx",
        "recipients_undelivered_idx",
    } <= names
