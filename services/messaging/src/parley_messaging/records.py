"""The pure parts of messaging: times as the tables keep them, lists of message ids, and
what fits one frame (a message as the event that carries it, a batch of fetched messages).

A message is refused at the send unless it fits a frame both as its MessageIncoming event
and alone in a MessageBatch: what was accepted can always be told and fetched.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from parley.v1 import client_pb2, messaging_pb2
from parley_messaging.store import StoredMessage
from parley_protocol import framing
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.validation import validate_message_id

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Message ids in one AckMessages or MarkRead (a fetch gives at most 1000 at once).
MAX_IDS_PER_REQUEST = 1000
# The largest value of a frame's numbers (seq, reply_to, event): the worst case of a frame.
_U64_MAX = 2**64 - 1
# Bytes of the fields of an Envelope around a reply body (seq, reply_to at their largest)
# and of MessageBatch.more set.
_REPLY_ENVELOPE_BYTES = client_pb2.Envelope(seq=_U64_MAX, reply_to=_U64_MAX).ByteSize()
_MORE_BYTES = messaging_pb2.MessageBatch(more=True).ByteSize()
# Tag of Envelope.message_batch (field 421) and of MessageBatch.messages (field 1).
_BATCH_TAG_BYTES = 2
_MESSAGE_TAG_BYTES = 1


def to_datetime(ms: int) -> datetime:
    """Milliseconds since the epoch as a timestamptz value (exact)."""
    return EPOCH + timedelta(milliseconds=ms)


def to_ms(at: datetime) -> int:
    """A timestamptz value as milliseconds since the epoch (exact for whole milliseconds)."""
    return (at - EPOCH) // timedelta(milliseconds=1)


def message_uuid(message_id: str, field: str = "message_id") -> uuid.UUID:
    """A message id (a lowercase UUID, else INVALID_ARGUMENT naming `field`) as a UUID."""
    return uuid.UUID(validate_message_id(message_id, field))


def validate_message_ids(message_ids: Sequence[str], field: str = "message_ids") -> list[uuid.UUID]:
    """The ids of an AckMessages or MarkRead: each a lowercase UUID (the error names its
    index), at most MAX_IDS_PER_REQUEST; repeats count once, first occurrence first."""
    if len(message_ids) > MAX_IDS_PER_REQUEST:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"{len(message_ids)} message ids in one request; the limit is {MAX_IDS_PER_REQUEST}",
            field,
        )
    found: dict[uuid.UUID, None] = {}
    for index, message_id in enumerate(message_ids):
        found[message_uuid(message_id, f"{field}[{index}]")] = None
    return list(found)


def _varint_bytes(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def event_frame_bytes(message: messaging_pb2.Message) -> int:
    """The largest frame the message's MessageIncoming (or MessageSent: the same size) can
    take on its way to a device (seq and the event's number at their largest)."""
    return client_pb2.Envelope(
        seq=_U64_MAX,
        event=_U64_MAX,
        message_incoming=messaging_pb2.MessageIncoming(message=message),
    ).ByteSize()


def _entry_bytes(message: messaging_pb2.Message) -> int:
    size = message.ByteSize()
    return _MESSAGE_TAG_BYTES + _varint_bytes(size) + size


def _reply_bytes(batch_bytes: int) -> int:
    return _REPLY_ENVELOPE_BYTES + _BATCH_TAG_BYTES + _varint_bytes(batch_bytes) + batch_bytes


def batch_frame_bytes(messages: Sequence[messaging_pb2.Message], more: bool = True) -> int:
    """The largest frame a MessageBatch of these messages can take as a reply."""
    batch = sum(_entry_bytes(m) for m in messages) + (_MORE_BYTES if more else 0)
    return _reply_bytes(batch)


def require_fits_frame(message: messaging_pb2.Message, field: str = "text") -> None:
    """PAYLOAD_TOO_LARGE unless the message fits a frame as an event and alone in a batch."""
    size = max(event_frame_bytes(message), batch_frame_bytes([message]))
    if size > framing.MAX_FRAME_BYTES:
        raise ParleyError(
            ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
            f"the message takes {size} bytes as an event; a frame holds "
            f"{framing.MAX_FRAME_BYTES} bytes: shorten the text or the headers",
            field,
        )


def fill_batch(messages: Sequence[messaging_pb2.Message], more: bool) -> messaging_pb2.MessageBatch:
    """A MessageBatch of the first of `messages` that fit one reply frame, in order (at least
    one); `more` is set when there are more (beyond `messages`, or left out here)."""
    taken: list[messaging_pb2.Message] = []
    size = _MORE_BYTES
    for message in messages:
        entry = _entry_bytes(message)
        if taken and _reply_bytes(size + entry) > framing.MAX_FRAME_BYTES:
            more = True
            break
        taken.append(message)
        size += entry
    return messaging_pb2.MessageBatch(messages=taken, more=more)


def message_of(stored: StoredMessage) -> messaging_pb2.Message:
    """A stored message as devices get it."""
    return messaging_pb2.Message(
        message_id=str(stored.message_id),
        sender_id=stored.sender_id,
        recipient_ids=stored.recipient_ids,
        text=stored.text,
        headers=stored.headers,
        timestamp_ms=to_ms(stored.sent_at),
    )
