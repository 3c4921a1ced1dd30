"""The pure parts of messaging: times, message ids, and what fits one frame."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from parley.v1 import client_pb2, messaging_pb2
from parley_messaging import records
from parley_protocol import framing
from parley_protocol.errors import ErrorCode, ParleyError

U64 = 2**64 - 1


def _message(text: str = "hi", **fields: object) -> messaging_pb2.Message:
    return messaging_pb2.Message(
        message_id=str(uuid.uuid4()),
        sender_id="alice",
        recipient_ids=["bob", "carol"],
        text=text,
        timestamp_ms=1_700_000_000_123,
        **fields,  # type: ignore[arg-type]
    )


def test_times_round_trip_to_the_millisecond() -> None:
    at = records.to_datetime(1_700_000_000_123)
    assert at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert records.to_ms(at) == 1_700_000_000_123
    assert records.to_ms(records.to_datetime(0)) == 0


def test_message_ids_are_lowercase_uuids_and_errors_name_the_index() -> None:
    given = str(uuid.uuid4())
    assert records.message_uuid(given) == uuid.UUID(given)
    for bad in ("", "nope", given.upper(), given + "0"):
        with pytest.raises(ParleyError) as info:
            records.message_uuid(bad)
        assert info.value.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT
        assert info.value.field == "message_id"
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert records.validate_message_ids([a, b, a]) == [uuid.UUID(a), uuid.UUID(b)]
    assert records.validate_message_ids([]) == []
    with pytest.raises(ParleyError) as info:
        records.validate_message_ids([a, "x"])
    assert info.value.field == "message_ids[1]"


def test_too_many_ids_in_one_request_are_refused() -> None:
    ids = [str(uuid.uuid4()) for _ in range(records.MAX_IDS_PER_REQUEST + 1)]
    with pytest.raises(ParleyError) as info:
        records.validate_message_ids(ids)
    assert info.value.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT
    assert len(records.validate_message_ids(ids[:-1])) == records.MAX_IDS_PER_REQUEST


def test_frame_sizes_are_the_largest_the_event_and_the_reply_can_take() -> None:
    message = _message(headers={"k": "v"})
    event = client_pb2.Envelope(
        seq=U64, event=U64, message_incoming=messaging_pb2.MessageIncoming(message=message)
    )
    assert records.event_frame_bytes(message) == event.ByteSize()
    reply = client_pb2.Envelope(
        seq=U64,
        reply_to=U64,
        message_batch=messaging_pb2.MessageBatch(messages=[message, message], more=True),
    )
    assert records.batch_frame_bytes([message, message]) == reply.ByteSize()
    alone = client_pb2.Envelope(
        seq=U64, reply_to=U64, message_batch=messaging_pb2.MessageBatch(messages=[message])
    )
    assert records.batch_frame_bytes([message], more=False) == alone.ByteSize()


def test_a_message_that_does_not_fit_a_frame_is_refused() -> None:
    records.require_fits_frame(_message("x" * 60_000))
    with pytest.raises(ParleyError) as info:
        records.require_fits_frame(_message("x" * framing.MAX_FRAME_BYTES))
    assert info.value.code == ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE
    assert info.value.field == "text"
    # At the edge: the longest text that passes makes frames that fit; one byte more fails.
    low, high = 0, framing.MAX_FRAME_BYTES
    while low < high:
        middle = (low + high + 1) // 2
        try:
            records.require_fits_frame(_message("x" * middle))
            low = middle
        except ParleyError:
            high = middle - 1
    longest = _message("x" * low)
    assert records.event_frame_bytes(longest) <= framing.MAX_FRAME_BYTES
    assert records.batch_frame_bytes([longest]) <= framing.MAX_FRAME_BYTES
    with pytest.raises(ParleyError):
        records.require_fits_frame(_message("x" * (low + 1)))


def test_fill_batch_takes_what_fits_one_reply_in_order() -> None:
    small = [_message(f"m{i}") for i in range(5)]
    batch = records.fill_batch(small, more=False)
    assert list(batch.messages) == small and not batch.more
    assert records.fill_batch(small, more=True).more
    big = [_message("x" * 60_000) for _ in range(3)]
    batch = records.fill_batch(big, more=False)
    assert list(batch.messages) == big[:2] and batch.more  # the third is left for later
    assert records.batch_frame_bytes(batch.messages) <= framing.MAX_FRAME_BYTES
    # At least one message, whatever its size.
    assert len(records.fill_batch([_message("x" * 128_000)], more=False).messages) == 1
    assert list(records.fill_batch([], more=False).messages) == []


def test_a_stored_message_as_devices_get_it() -> None:
    from parley_messaging.store import StoredMessage

    message_id = uuid.uuid4()
    stored = StoredMessage(
        seq=7,
        message_id=message_id,
        sender_id="alice",
        recipient_ids=["bob"],
        text="hi",
        headers={"k": "v"},
        sent_at=records.to_datetime(1_700_000_000_123),
    )
    assert records.message_of(stored) == messaging_pb2.Message(
        message_id=str(message_id),
        sender_id="alice",
        recipient_ids=["bob"],
        text="hi",
        headers={"k": "v"},
        timestamp_ms=1_700_000_000_123,
    )
