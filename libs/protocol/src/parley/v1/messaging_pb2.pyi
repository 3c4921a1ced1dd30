from parley.v1 import common_pb2 as _common_pb2
from parley.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Message(_message.Message):
    __slots__ = ("message_id", "sender_id", "recipient_ids", "text", "headers", "timestamp_ms")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    sender_id: str
    recipient_ids: _containers.RepeatedScalarFieldContainer[str]
    text: str
    headers: _containers.ScalarMap[str, str]
    timestamp_ms: int
    def __init__(self, message_id: _Optional[str] = ..., sender_id: _Optional[str] = ..., recipient_ids: _Optional[_Iterable[str]] = ..., text: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class SendMessage(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: Message
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...

class AckMessages(_message.Message):
    __slots__ = ("message_ids",)
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    message_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, message_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class FetchMessages(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class MarkRead(_message.Message):
    __slots__ = ("message_ids",)
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    message_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, message_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SendTyping(_message.Message):
    __slots__ = ("recipient_id", "typing")
    RECIPIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    recipient_id: str
    typing: bool
    def __init__(self, recipient_id: _Optional[str] = ..., typing: _Optional[bool] = ...) -> None: ...

class MessageAccepted(_message.Message):
    __slots__ = ("message_id", "timestamp_ms", "offline")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    timestamp_ms: int
    offline: _containers.RepeatedCompositeFieldContainer[RecipientPush]
    def __init__(self, message_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., offline: _Optional[_Iterable[_Union[RecipientPush, _Mapping]]] = ...) -> None: ...

class RecipientPush(_message.Message):
    __slots__ = ("recipient_id", "push_pairs")
    RECIPIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PUSH_PAIRS_FIELD_NUMBER: _ClassVar[int]
    recipient_id: str
    push_pairs: _containers.RepeatedCompositeFieldContainer[_common_pb2.PushPair]
    def __init__(self, recipient_id: _Optional[str] = ..., push_pairs: _Optional[_Iterable[_Union[_common_pb2.PushPair, _Mapping]]] = ...) -> None: ...

class MessageBatch(_message.Message):
    __slots__ = ("messages", "more")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    more: bool
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

class MessagesAcked(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class MessageIncoming(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: Message
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...

class MessageSent(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: Message
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...

class MessageDelivered(_message.Message):
    __slots__ = ("message_id", "recipient_id", "timestamp_ms")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    recipient_id: str
    timestamp_ms: int
    def __init__(self, message_id: _Optional[str] = ..., recipient_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class MessageRead(_message.Message):
    __slots__ = ("message_id", "reader_id", "timestamp_ms")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    READER_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    reader_id: str
    timestamp_ms: int
    def __init__(self, message_id: _Optional[str] = ..., reader_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class TypingChanged(_message.Message):
    __slots__ = ("sender_id", "typing")
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    sender_id: str
    typing: bool
    def __init__(self, sender_id: _Optional[str] = ..., typing: _Optional[bool] = ...) -> None: ...
