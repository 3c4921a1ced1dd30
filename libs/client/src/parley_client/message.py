"""What a message is, as values: the message the app writes (`WritableMessage`), the message
it sends or receives (`Message`), and what becomes of it for each recipient (delivered, read,
failed). Times are seconds since the epoch, as in `CallDetails`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from parley_client.errors import ParleyError
from parley_client.trace_context import TraceParent
from parley_protocol import validation
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.pb import messaging as messaging_pb


@dataclass(frozen=True)
class Message:
    """A message sent or received (the guide's Message).

    `timestamp` is seconds since the epoch: when the messaging service accepted it, or, for
    the message `send()` returns (not accepted yet), when it was sent on this device.
    `trace_id` (32 hex digits) is the trace its sending is recorded under in the
    deployment's tracing: each message this client sends starts one (kept while it is
    retried); "" for a message received.
    """

    message_id: str
    sender_id: str
    recipient_ids: tuple[str, ...]
    text_body: str
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    timestamp: float = 0.0
    trace_id: str = field(default="", compare=False)

    @classmethod
    def from_proto(cls, message: messaging_pb.Message) -> Message:
        return cls(
            message_id=message.message_id,
            sender_id=message.sender_id,
            recipient_ids=tuple(message.recipient_ids),
            text_body=message.text,
            headers=dict(message.headers),
            timestamp=message.timestamp_ms / 1000,
        )

    def to_proto(self) -> messaging_pb.Message:
        """The message as SendMessage carries it (sender and time are the service's)."""
        return messaging_pb.Message(
            message_id=self.message_id,
            recipient_ids=list(self.recipient_ids),
            text=self.text_body,
            headers=dict(self.headers),
        )

    def accepted_at(self, timestamp_ms: int) -> Message:
        """This message with the time the service accepted it."""
        return Message(
            self.message_id,
            self.sender_id,
            self.recipient_ids,
            self.text_body,
            dict(self.headers),
            timestamp_ms / 1000 if timestamp_ms else self.timestamp,
            self.trace_id,
        )


class WritableMessage:
    """A message to send (the guide's WritableMessage): one or more recipients (user IDs), a
    text, and optional headers. Its `message_id` (a new lowercase UUID) is chosen here; a
    message is sent once: `from_message` makes a new one (with a new id) to send again, the
    guide's retry after a NETWORK failure.

    Nothing is checked until `message_client.send(...)`, which raises ParleyError for
    recipients (1 to 10 distinct user IDs), a text (at most 64 KiB of UTF-8) or headers (at
    most 1024 bytes of UTF-8) it cannot send.
    """

    def __init__(
        self,
        recipients: Iterable[str] | str,
        text: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._message_id = str(uuid.uuid4())
        self.recipient_ids: list[str] = (
            [recipients] if isinstance(recipients, str) else list(recipients)
        )
        self.text_body: str = text
        self.headers: dict[str, str] = dict(headers or {})

    @classmethod
    def from_message(cls, message: Message | WritableMessage) -> WritableMessage:
        """A new message (a new id) with the recipients, text and headers of `message`."""
        return cls(list(message.recipient_ids), message.text_body, dict(message.headers))

    @property
    def message_id(self) -> str:
        return self._message_id

    def add_recipient(self, user_id: str) -> None:
        self.recipient_ids.append(user_id)

    def add_header(self, name: str, value: str) -> None:
        self.headers[name] = value

    def validated(self, sender_id: str, now: float | None = None) -> Message:
        """The Message to send, or ParleyError naming what cannot be sent."""
        try:
            validation.validate_message_id(self._message_id)
            recipients = list(self.recipient_ids)
            for index, recipient in enumerate(recipients):
                if not isinstance(recipient, str):
                    raise ProtocolError(
                        ErrorCode.ERROR_CODE_INVALID_USER_ID,
                        f"a recipient is a {type(recipient).__name__}, not a user ID",
                        f"recipient_ids[{index}]",
                    )
            validation.validate_recipients(recipients)
            text = self.text_body
            if not isinstance(text, str):
                raise ProtocolError(
                    ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "the text is not a string", "text"
                )
            validation.validate_message_text(text)
            headers = validation.validate_headers(dict(self.headers))
        except ProtocolError as exc:
            raise ParleyError.from_protocol(exc) from None
        return Message(
            self._message_id,
            sender_id,
            tuple(recipients),
            text,
            headers,
            time.time() if now is None else now,
            TraceParent.new().trace_id,
        )

    def __repr__(self) -> str:
        return (
            f"WritableMessage({self.recipient_ids!r}, {len(self.text_body)} characters, "
            f"id {self._message_id})"
        )


@dataclass(frozen=True)
class MessageDeliveryInfo:
    """A device of `recipient_id` has the message (the guide's MessageDeliveryInfo)."""

    message_id: str
    recipient_id: str
    timestamp: float


@dataclass(frozen=True)
class MessageReadInfo:
    """`reader_id` read the message (read receipts)."""

    message_id: str
    reader_id: str
    timestamp: float


@dataclass(frozen=True)
class MessageFailureInfo:
    """The message could not be sent to `recipient_id` (the guide's MessageFailureInfo).
    `error.type` is NETWORK when it could not be sent within the retry period; another type
    when the service refused it (the error says why)."""

    message_id: str
    recipient_id: str
    error: ParleyError
