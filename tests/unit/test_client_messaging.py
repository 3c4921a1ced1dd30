"""The message client against a fake messaging service behind its link (messaging_double.py):
validation at send, the durable outbox, sending in order with a bounded number of requests,
retries and failures, incoming messages once each and acknowledged, the history download,
delivered/read receipts, push data, typing; and the client's wiring (client.message_client)
through the fake gateway."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from parley_client import (
    ErrorType,
    Message,
    MessageClient,
    ParleyClient,
    ParleyError,
    PushPair,
    WritableMessage,
)
from parley_client.messaging import storage_name
from parley_client.trace_context import TraceParent
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import client as pb
from parley_protocol.pb import messaging as messaging_pb
from tests.unit.client_double import harness, wait_until
from tests.unit.messaging_double import (
    FakeMessaging,
    Heard,
    device,
    incoming,
    push_pair,
    wire_message,
)


def new_id() -> str:
    return str(uuid.uuid4())


def outbox_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "messages").glob("*.outbox.jsonl"))


# -- send: validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipients", "text", "headers", "code"),
    [
        ([], "hi", None, "INVALID_ARGUMENT"),
        ([f"user{i}" for i in range(11)], "hi", None, "INVALID_ARGUMENT"),
        (["bob", "bob"], "hi", None, "INVALID_ARGUMENT"),
        (["bob\n"], "hi", None, "INVALID_USER_ID"),
        (["x" * 41], "hi", None, "INVALID_USER_ID"),
        (["bob"], "x" * (64 * 1024 + 1), None, "PAYLOAD_TOO_LARGE"),
        (["bob"], "hi", {"h": "v" * 2000}, None),
    ],
)
async def test_send_refuses_what_cannot_be_sent_and_keeps_nothing(
    tmp_path: Path,
    recipients: list[str],
    text: str,
    headers: dict[str, str] | None,
    code: str | None,
) -> None:
    alice = device(tmp_path)
    with pytest.raises(ParleyError) as caught:
        alice.client.send(WritableMessage(recipients, text, headers))
    if code is not None:
        assert caught.value.code == code
    assert caught.value.type is ErrorType.OTHER
    assert alice.client.unsent == []
    await alice.connect()
    await asyncio.sleep(0.02)
    assert alice.service.of("send_message") == []
    await alice.client.terminate()


async def test_send_needs_messaging_support_and_a_started_client(tmp_path: Path) -> None:
    never = device(tmp_path, started=lambda: False)
    with pytest.raises(ParleyError) as caught:
        never.client.send(WritableMessage("bob", "hi"))
    assert caught.value.code == "WRONG_STATE"

    alice = device(tmp_path)
    alice.capabilities.messaging = False
    with pytest.raises(ParleyError) as caught:
        alice.client.send(WritableMessage("bob", "hi"))
    assert caught.value.type is ErrorType.CAPABILITY
    assert alice.client.unsent == never.client.unsent == []

    with pytest.raises(TypeError):
        alice.client.send("bob")  # type: ignore[arg-type]
    await alice.client.terminate()
    with pytest.raises(ParleyError, match="terminated"):
        alice.client.send(WritableMessage("bob", "hi"))


async def test_send_returns_the_message_it_keeps(tmp_path: Path) -> None:
    alice = device(tmp_path)
    writable = WritableMessage(["bob", "carol"], "Hello!", {"topic": "demo"})
    message = alice.client.send(writable)
    assert isinstance(message, Message)
    assert message.message_id == writable.message_id
    assert (message.sender_id, message.recipient_ids, message.text_body) == (
        "alice",
        ("bob", "carol"),
        "Hello!",
    )
    assert message.headers == {"topic": "demo"}
    assert alice.client.unsent == [message]
    await alice.client.terminate()


# -- the outbox ------------------------------------------------------------------------------


async def test_the_outbox_outlives_the_client_and_is_sent_by_the_next_one(tmp_path: Path) -> None:
    first = device(tmp_path)
    message = first.client.send(WritableMessage(["bob", "carol"], "kept"))  # not connected yet
    await first.client.terminate()
    assert [p.name.endswith(".outbox.jsonl") for p in outbox_files(tmp_path)] == [True]

    service = FakeMessaging()
    second = device(tmp_path, service=service)
    assert [m.message_id for m in second.client.unsent] == [message.message_id]
    await second.connect()
    await wait_until(lambda: second.heard.of("sent") != [])
    assert service.sent_ids() == [message.message_id]  # the same id: a retry, not a copy
    assert second.heard.of("sent") == [(message.message_id, "bob"), (message.message_id, "carol")]
    assert second.client.unsent == []
    await second.client.terminate()

    third = device(tmp_path)
    assert third.client.unsent == []


async def test_a_burst_is_sent_in_order_with_at_most_eight_requests_in_flight(
    tmp_path: Path,
) -> None:
    """Twenty conversations: eight sends at a time, each conversation in order."""
    alice = device(tmp_path)
    await alice.connect()
    gate = alice.service.hold("send_message")
    sent = [
        alice.client.send(WritableMessage(f"user {i % 20}", f"n{i}")).message_id
        for i in range(2000)
    ]
    await wait_until(lambda: alice.service.in_flight == 8)
    await asyncio.sleep(0.02)
    assert alice.service.in_flight == 8
    gate.set()
    await wait_until(lambda: len(alice.heard.of("sent")) == 2000, timeout=30)
    assert alice.service.max_in_flight == 8
    got = alice.service.sent_ids()
    assert sorted(got) == sorted(sent)
    for k in range(20):
        conversation = sent[k::20]
        assert [i for i in got if i in set(conversation)] == conversation
    assert alice.client.unsent == []
    await alice.client.terminate()


async def test_a_conversation_is_sent_one_message_at_a_time_in_order(tmp_path: Path) -> None:
    alice = device(tmp_path)
    await alice.connect()
    gate = alice.service.hold("send_message")
    sent = [alice.client.send(WritableMessage("bob", f"n{i}")).message_id for i in range(50)]
    await wait_until(lambda: alice.service.in_flight == 1)
    await asyncio.sleep(0.02)
    assert alice.service.in_flight == 1
    gate.set()
    await wait_until(lambda: len(alice.heard.of("sent")) == 50, timeout=10)
    assert alice.service.max_in_flight == 1
    assert alice.service.sent_ids() == sent
    await alice.client.terminate()


# -- sent, once ------------------------------------------------------------------------------


@pytest.mark.parametrize("event_first", [True, False])
async def test_sent_is_told_once_per_recipient_when_reply_and_event_both_come(
    tmp_path: Path, event_first: bool
) -> None:
    alice = device(tmp_path)
    await alice.connect()
    gate = alice.service.hold("send_message")
    message = alice.client.send(WritableMessage(["bob", "carol"], "hi"))
    await wait_until(lambda: alice.service.in_flight == 1)
    stored = messaging_pb.Message(
        message_id=message.message_id,
        sender_id="alice",
        recipient_ids=["bob", "carol"],
        text="hi",
        timestamp_ms=1_700_000_000_000,
    )
    event = pb.Envelope(message_sent=messaging_pb.MessageSent(message=stored))
    if event_first:
        await alice.event(event)
        gate.set()
    else:
        gate.set()
        await wait_until(lambda: alice.service.in_flight == 0)
        await asyncio.sleep(0.01)
        await alice.event(event)
    await asyncio.sleep(0.02)
    assert alice.heard.of("sent") == [(message.message_id, "bob"), (message.message_id, "carol")]
    assert alice.client.unsent == []
    await alice.client.terminate()


async def test_a_message_sent_from_another_device_is_told_as_sent(tmp_path: Path) -> None:
    alice = device(tmp_path)
    await alice.connect()
    other = wire_message(new_id(), sender_id="alice", recipients=("bob",))
    event = pb.Envelope(message_sent=messaging_pb.MessageSent(message=other))
    await alice.event(event)
    await alice.event(event)
    assert alice.heard.of("sent") == [(other.message_id, "bob")]
    assert alice.service.of("ack_messages") == []  # the service counts no acks of one's own
    await alice.client.terminate()


# -- failures and retries ----------------------------------------------------------------------


async def test_a_network_failure_keeps_the_message_and_it_goes_after_reconnecting(
    tmp_path: Path,
) -> None:
    alice = device(tmp_path)
    await alice.connect()
    alice.service.errors["send_message"] = [
        ParleyError(ErrorCode.ERROR_CODE_UNAVAILABLE, "messaging is down"),
        ParleyError(ErrorCode.ERROR_CODE_RATE_LIMITED, "slow down"),
    ]
    message = alice.client.send(WritableMessage("bob", "hi"))
    await wait_until(lambda: len(alice.service.sent_ids()) == 1)
    await asyncio.sleep(0.02)
    assert alice.client.unsent == [message] and alice.heard.events == []

    await alice.disconnect()
    await alice.connect(reconnected=True)  # RATE_LIMITED this time: kept again
    await wait_until(lambda: len(alice.service.sent_ids()) == 2)
    await asyncio.sleep(0.02)
    assert alice.client.unsent == [message] and alice.heard.events == []

    await alice.disconnect()
    await alice.connect(reconnected=True)
    await wait_until(lambda: alice.heard.of("sent") != [])
    assert alice.service.sent_ids() == [message.message_id] * 3
    assert alice.heard.of("sent") == [(message.message_id, "bob")]
    assert alice.heard.failed == [] and alice.client.unsent == []
    await alice.client.terminate()


async def test_a_message_sent_while_disconnected_goes_once_connected(tmp_path: Path) -> None:
    alice = device(tmp_path)
    await alice.connect()
    await alice.disconnect()
    message = alice.client.send(WritableMessage("bob", "later"))
    await asyncio.sleep(0.02)
    assert alice.service.of("send_message") == []
    await alice.connect(reconnected=True, resumed=True)
    await wait_until(lambda: alice.heard.of("sent") == [(message.message_id, "bob")])
    await alice.client.terminate()


async def test_while_connected_a_kept_message_is_sent_again_after_a_backoff(
    tmp_path: Path,
) -> None:
    alice = device(tmp_path, retry_initial=0.05)
    await alice.connect()
    alice.service.errors["send_message"] = [
        ParleyError(ErrorCode.ERROR_CODE_TIMEOUT, "no answer in time")
    ]
    message = alice.client.send(WritableMessage("bob", "hi"))
    await wait_until(lambda: alice.heard.of("sent") == [(message.message_id, "bob")])
    assert alice.service.sent_ids() == [message.message_id] * 2
    await alice.client.terminate()


async def test_each_message_is_a_trace_of_its_own_kept_across_retries_and_restarts(
    tmp_path: Path,
) -> None:
    alice = device(tmp_path, retry_initial=0.05)
    await alice.connect()
    alice.service.errors["send_message"] = [
        ParleyError(ErrorCode.ERROR_CODE_TIMEOUT, "no answer in time")
    ]
    first = alice.client.send(WritableMessage("bob", "one"))
    second = alice.client.send(WritableMessage("carol", "two"))
    await wait_until(lambda: len(alice.heard.of("sent")) == 2)
    assert first.trace_id != second.trace_id
    assert all(len(m.trace_id) == 32 for m in (first, second))
    sends = [tp for body, tp in alice.service.traceparents if body == "send_message"]
    assert len(sends) == 3  # one of them was tried twice
    parsed = [TraceParent.parse(tp) for tp in sends]
    assert all(p is not None for p in parsed)
    of_first = [p for p in parsed if p and p.trace_id == first.trace_id]
    of_second = [p for p in parsed if p and p.trace_id == second.trace_id]
    assert (len(of_first), len(of_second)) == (2, 1)
    assert of_first[0].span_id != of_first[1].span_id  # each try is a span of its own
    # Acknowledgements are no message's: they carry no trace.
    assert {tp for body, tp in alice.service.traceparents if body != "send_message"} <= {""}
    await alice.client.terminate()

    # A message kept in the outbox keeps its trace into the next run.
    kept = device(tmp_path).client
    message = kept.send(WritableMessage("bob", "later"))
    await kept.terminate()
    later = device(tmp_path)
    assert [m.trace_id for m in later.client.unsent] == [message.trace_id]
    await later.connect()
    await wait_until(lambda: later.service.sent_ids() == [message.message_id])
    [traceparent] = [tp for body, tp in later.service.traceparents if body == "send_message"]
    assert traceparent.split("-")[1] == message.trace_id
    await later.client.terminate()


async def test_a_kept_message_told_as_sent_lets_its_conversation_go_on(tmp_path: Path) -> None:
    """A send timed out (kept, its conversation waiting), then the service's MessageSent
    for it came (it had been stored after all): the next message of the conversation goes
    without a reconnect, and the first is not sent again."""
    alice = device(tmp_path, retry_initial=30.0)
    await alice.connect()
    alice.service.errors["send_message"] = [
        ParleyError(ErrorCode.ERROR_CODE_TIMEOUT, "no answer in time")
    ]
    first = alice.client.send(WritableMessage("bob", "one"))
    second = alice.client.send(WritableMessage("bob", "two"))
    await wait_until(lambda: alice.service.sent_ids() == [first.message_id])
    await asyncio.sleep(0.05)
    assert alice.service.sent_ids() == [first.message_id]  # the conversation waits
    stored = wire_message(first.message_id, sender_id="alice", recipients=("bob",))
    await alice.event(pb.Envelope(message_sent=messaging_pb.MessageSent(message=stored)))
    await wait_until(lambda: alice.service.sent_ids() == [first.message_id, second.message_id])
    await wait_until(lambda: len(alice.heard.of("sent")) == 2)
    assert alice.client.unsent == []
    await alice.client.terminate()


async def test_a_message_unsent_within_the_retry_period_fails_with_a_network_error(
    tmp_path: Path,
) -> None:
    alice = device(tmp_path, retry_period=0.3, retry_initial=0.05)
    await alice.connect()
    alice.service.connected = False  # every request fails: not connected
    message = alice.client.send(WritableMessage(["bob", "carol"], "hi"))
    await wait_until(lambda: len(alice.heard.failed) == 2, timeout=3)
    assert [(m.message_id, info.recipient_id) for m, info in alice.heard.failed] == [
        (message.message_id, "bob"),
        (message.message_id, "carol"),
    ]
    for _, info in alice.heard.failed:
        assert info.message_id == message.message_id
        assert info.error.type is ErrorType.NETWORK
    assert alice.client.unsent == [] and alice.heard.of("sent") == []
    await alice.client.terminate()
    assert device(tmp_path).client.unsent == []  # gone from the file too


async def test_a_message_left_past_its_retry_period_fails_at_the_next_start(
    tmp_path: Path,
) -> None:
    first = device(tmp_path)
    message = first.client.send(WritableMessage("bob", "stale"))
    await first.client.terminate()
    await asyncio.sleep(0.06)
    second = device(tmp_path, retry_period=0.05)
    await second.connect()
    await wait_until(lambda: len(second.heard.failed) == 1)
    assert second.heard.failed[0][1].error.type is ErrorType.NETWORK
    assert second.heard.failed[0][0].message_id == message.message_id
    assert second.service.of("send_message") == []
    await second.client.terminate()


@pytest.mark.parametrize(
    "code",
    [
        ErrorCode.ERROR_CODE_NOT_FOUND,
        ErrorCode.ERROR_CODE_PERMISSION_DENIED,
        ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
        ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
    ],
)
async def test_a_refused_message_fails_for_each_recipient_with_the_error(
    tmp_path: Path, code: int
) -> None:
    alice = device(tmp_path)
    await alice.connect()
    alice.service.errors["send_message"] = [ParleyError(code, "refused")]
    message = alice.client.send(WritableMessage(["bob", "carol"], "hi"))
    await wait_until(lambda: len(alice.heard.failed) == 2)
    assert [info.recipient_id for _, info in alice.heard.failed] == ["bob", "carol"]
    for failed, info in alice.heard.failed:
        assert failed.message_id == info.message_id == message.message_id
        assert info.error.error_code == code and info.error.type is ErrorType.OTHER
    await asyncio.sleep(0.02)
    assert alice.service.sent_ids() == [message.message_id]  # not tried again
    assert alice.client.unsent == []
    await alice.client.terminate()


async def test_terminate_keeps_unsent_messages_for_the_next_run(tmp_path: Path) -> None:
    alice = device(tmp_path)
    await alice.connect()
    alice.service.hold("send_message")
    message = alice.client.send(WritableMessage("bob", "in flight"))
    await wait_until(lambda: alice.service.in_flight == 1)
    await alice.client.terminate()
    assert [m.message_id for m in device(tmp_path).client.unsent] == [message.message_id]


# -- push data -------------------------------------------------------------------------------


async def test_push_data_is_asked_for_once_with_the_pairs_of_offline_recipients(
    tmp_path: Path,
) -> None:
    alice = device(tmp_path)
    await alice.connect()
    alice.service.offline = [
        messaging_pb.RecipientPush(recipient_id="bob", push_pairs=[push_pair(b"b1", b"p1")]),
        messaging_pb.RecipientPush(
            recipient_id="carol",
            push_pairs=[push_pair(b"c1", b"p2"), push_pair(b"c2", b"p2")],
        ),
        messaging_pb.RecipientPush(recipient_id="dave"),  # no push registered (yet)
    ]
    message = alice.client.send(WritableMessage(["bob", "carol", "dave", "erin"], "hi"))
    await wait_until(lambda: len(alice.heard.pushes) == 1)
    pushed, pairs = alice.heard.pushes[0]
    assert pushed.message_id == message.message_id
    assert pairs == [PushPair(b"b1", b"p1"), PushPair(b"c1", b"p2"), PushPair(b"c2", b"p2")]

    alice.service.offline = []
    alice.client.send(WritableMessage("bob", "online now"))
    await wait_until(lambda: len(alice.heard.of("sent")) == 5)
    assert len(alice.heard.pushes) == 1  # nobody offline: no push
    await alice.client.terminate()


# -- incoming --------------------------------------------------------------------------------


async def test_incoming_messages_are_shown_once_and_acknowledged_in_one_batch(
    tmp_path: Path,
) -> None:
    alice = device(tmp_path)
    await alice.connect(resumed=True)  # no history download
    messages = [wire_message(new_id()) for _ in range(3)]
    for message in messages:
        await alice.event(incoming(message))
    ids = [m.message_id for m in messages]
    await wait_until(lambda: alice.service.acked == set(ids))
    assert alice.heard.of("incoming") == ids
    assert [list(a.message_ids) for a in alice.service.of("ack_messages")] == [ids]  # type: ignore[attr-defined]
    first = alice.heard.incoming[0]
    assert (first.sender_id, first.recipient_ids, first.text_body) == (
        "bob",
        ("alice",),
        messages[0].text,
    )

    await alice.event(incoming(messages[0]))  # the service sends it again: not acked yet?
    await wait_until(lambda: len(alice.service.of("ack_messages")) == 2)
    assert alice.heard.of("incoming") == ids  # not shown again, acknowledged again
    assert list(alice.service.of("ack_messages")[1].message_ids) == [ids[0]]  # type: ignore[attr-defined]
    await alice.client.terminate()


async def test_incoming_is_shown_once_across_event_fetch_and_restart(tmp_path: Path) -> None:
    service = FakeMessaging()
    early, late = wire_message(new_id()), wire_message(new_id())
    alice = device(tmp_path, service=service)
    await alice.connect(resumed=True)
    service.errors["ack_messages"] = [ParleyError.network("lost")]
    await alice.event(incoming(early))
    await wait_until(lambda: len(service.of("ack_messages")) == 1)
    service.inbox = [early, late]  # the ack did not reach the service before the fetch
    await alice.disconnect()
    await alice.connect(reconnected=True)  # not resumed: the history download runs
    await wait_until(lambda: service.acked >= {early.message_id, late.message_id})
    assert alice.heard.of("incoming") == [early.message_id, late.message_id]
    await alice.client.terminate()

    service.acked.clear()  # the service still has them all as unacknowledged
    again = device(tmp_path, service=service)
    await again.connect()
    await wait_until(lambda: service.acked >= {early.message_id, late.message_id})
    assert again.heard.of("incoming") == []  # shown by the earlier run
    await again.client.terminate()


async def test_a_failed_acknowledgement_is_sent_again_after_reconnecting(tmp_path: Path) -> None:
    alice = device(tmp_path)
    await alice.connect(resumed=True)
    alice.service.errors["ack_messages"] = [ParleyError.network("lost")]
    message = wire_message(new_id())
    await alice.event(incoming(message))
    await wait_until(lambda: len(alice.service.of("ack_messages")) == 1)
    await asyncio.sleep(0.02)
    assert alice.service.acked == set()
    await alice.disconnect()
    await alice.connect(reconnected=True, resumed=True)
    await wait_until(lambda: alice.service.acked == {message.message_id})
    assert alice.heard.of("incoming") == [message.message_id]
    await alice.client.terminate()


async def test_the_history_is_fetched_page_by_page_each_after_its_acknowledgement(
    tmp_path: Path,
) -> None:
    service = FakeMessaging()
    service.inbox = [wire_message(new_id()) for _ in range(250)]
    alice = device(tmp_path, service=service)
    gate = service.hold("ack_messages")
    await alice.connect()
    await wait_until(lambda: len(service.of("ack_messages")) == 1)
    await asyncio.sleep(0.05)
    assert service.bodies() == ["fetch_messages", "ack_messages"]  # waits for the ack
    assert len(alice.heard.incoming) == 100
    gate.set()
    await wait_until(lambda: len(service.acked) == 250)
    await asyncio.sleep(0.02)
    assert service.bodies() == ["fetch_messages", "ack_messages"] * 3
    assert alice.heard.of("incoming") == [m.message_id for m in service.inbox]
    for fetch in service.of("fetch_messages"):
        assert fetch.limit == 100  # type: ignore[attr-defined]
    await alice.client.terminate()


async def test_a_failed_fetch_stops_the_download_until_the_next_connection(
    tmp_path: Path,
) -> None:
    service = FakeMessaging()
    service.inbox = [wire_message(new_id()) for _ in range(3)]
    service.errors["fetch_messages"] = [ParleyError.network("unavailable")]
    alice = device(tmp_path, service=service)
    await alice.connect()
    await wait_until(lambda: len(service.of("fetch_messages")) == 1)
    await asyncio.sleep(0.02)
    assert alice.heard.incoming == [] and service.of("ack_messages") == []
    await alice.disconnect()
    await alice.connect(reconnected=True, resumed=True)  # resumed: nothing was missed
    await asyncio.sleep(0.02)
    assert len(service.of("fetch_messages")) == 1
    await alice.disconnect()
    await alice.connect(reconnected=True)
    await wait_until(lambda: len(alice.heard.incoming) == 3)
    await alice.client.terminate()


# -- delivered, read, typing, read receipts ------------------------------------------------------


async def test_delivered_and_read_are_told_once_per_message_and_recipient(
    tmp_path: Path,
) -> None:
    alice = device(tmp_path)
    await alice.connect(resumed=True)
    message_id = new_id()
    for recipient in ["bob", "carol", "bob"]:
        await alice.event(
            pb.Envelope(
                message_delivered=messaging_pb.MessageDelivered(
                    message_id=message_id, recipient_id=recipient, timestamp_ms=1_700_000_000_000
                )
            )
        )
    for reader in ["bob", "bob"]:
        await alice.event(
            pb.Envelope(
                message_read=messaging_pb.MessageRead(
                    message_id=message_id, reader_id=reader, timestamp_ms=1_700_000_001_000
                )
            )
        )
    assert alice.heard.of("delivered") == [(message_id, "bob"), (message_id, "carol")]
    assert alice.heard.of("read") == [(message_id, "bob")]
    await alice.client.terminate()

    again = device(tmp_path)  # after a restart too
    await again.event(
        pb.Envelope(
            message_delivered=messaging_pb.MessageDelivered(
                message_id=message_id, recipient_id="carol"
            )
        )
    )
    assert again.heard.events == []
    await again.client.terminate()


async def test_typing_is_told_only_when_the_app_asked_for_it(tmp_path: Path) -> None:
    alice = device(tmp_path)
    await alice.connect(resumed=True)
    typing = pb.Envelope(typing_changed=messaging_pb.TypingChanged(sender_id="bob", typing=True))
    await alice.event(typing)
    assert alice.heard.of("typing") == []
    alice.client.set_typing_indicators(True)
    await alice.event(typing)
    assert alice.heard.of("typing") == [("bob", True)]

    await alice.client.send_typing("bob", True)
    sent = alice.service.of("send_typing")
    assert [(m.recipient_id, m.typing) for m in sent] == [("bob", True)]  # type: ignore[attr-defined]
    with pytest.raises(ParleyError):
        alice.client.send_typing("bad\nuser", True)
    await alice.client.terminate()


async def test_mark_read_sends_read_receipts(tmp_path: Path) -> None:
    alice = device(tmp_path)
    await alice.connect(resumed=True)
    ids = [new_id(), new_id()]
    await alice.client.mark_read(ids)
    assert [list(m.message_ids) for m in alice.service.of("mark_read")] == [ids]  # type: ignore[attr-defined]
    with pytest.raises(ParleyError):
        alice.client.mark_read(["not-an-id"])
    alice.service.connected = False
    with pytest.raises(ParleyError) as caught:
        await alice.client.mark_read([new_id()])
    assert caught.value.type is ErrorType.NETWORK
    await alice.client.terminate()


def test_storage_names_are_safe_file_names() -> None:
    names = {storage_name("app", user) for user in ["a b", "a.b", "*", ">", "a/b", "../x", "a"]}
    assert len(names) == 7
    for name in names:
        assert "/" not in name and not name.startswith(".") and name.isascii()


# -- through the client ------------------------------------------------------------------------


async def test_the_client_plugs_the_message_client_in_before_the_first_frame(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client()
        heard = Heard()
        message_client = client.message_client
        assert isinstance(message_client, MessageClient)
        assert client.message_client is message_client
        assert client.feature(MessageClient) is message_client
        message_client.add_message_client_listener(heard)
        with pytest.raises(ParleyError) as caught:
            message_client.send(WritableMessage("bob", "too early"))
        assert caught.value.code == "WRONG_STATE"

        early = wire_message(new_id())
        h.gateways[0].before_welcome = [incoming(early)]
        await client.start()
        await wait_until(lambda: heard.of("incoming") == [early.message_id])

        # the fake gateway has no messaging service: it refuses the body, for good
        message = message_client.send(WritableMessage("bob", "hi"))
        await wait_until(lambda: len(heard.failed) == 1)
        assert heard.failed[0][1].error.code == "UNKNOWN_MESSAGE"
        session = h.gateways[0].sessions[0]
        sends = [f.send_message for f in session.frames if f.HasField("send_message")]
        assert [s.message.message_id for s in sends] == [message.message_id]
        await client.terminate()

        other = ParleyClient(h.builder().config)
        other.set_support_messaging(True)
        await other.start()
        h.clients.append(other)
        assert other.feature(MessageClient) is other.message_client


async def test_a_client_without_messaging_support_refuses_to_send(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, _ = h.client()
        client.set_support_messaging(False)
        client.set_support_calling(True)
        await client.start()
        with pytest.raises(ParleyError) as caught:
            client.message_client.send(WritableMessage("bob", "hi"))
        assert caught.value.type is ErrorType.CAPABILITY
