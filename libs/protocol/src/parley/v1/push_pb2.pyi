from parley.v1 import common_pb2 as _common_pb2
from parley.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PushProvider(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUSH_PROVIDER_UNSPECIFIED: _ClassVar[PushProvider]
    PUSH_PROVIDER_FCM: _ClassVar[PushProvider]
    PUSH_PROVIDER_APNS: _ClassVar[PushProvider]
    PUSH_PROVIDER_WEB_PUSH: _ClassVar[PushProvider]
PUSH_PROVIDER_UNSPECIFIED: PushProvider
PUSH_PROVIDER_FCM: PushProvider
PUSH_PROVIDER_APNS: PushProvider
PUSH_PROVIDER_WEB_PUSH: PushProvider

class RegisterPushData(_message.Message):
    __slots__ = ("push_data",)
    PUSH_DATA_FIELD_NUMBER: _ClassVar[int]
    push_data: bytes
    def __init__(self, push_data: _Optional[bytes] = ...) -> None: ...

class UnregisterPushData(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RegisterManagedPush(_message.Message):
    __slots__ = ("provider", "token")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    provider: PushProvider
    token: str
    def __init__(self, provider: _Optional[_Union[PushProvider, str]] = ..., token: _Optional[str] = ...) -> None: ...

class UnregisterManagedPush(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RelayPushPayload(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: _Optional[bytes] = ...) -> None: ...

class PushRegistered(_message.Message):
    __slots__ = ("push_data", "managed_provider")
    PUSH_DATA_FIELD_NUMBER: _ClassVar[int]
    MANAGED_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    push_data: bool
    managed_provider: PushProvider
    def __init__(self, push_data: _Optional[bool] = ..., managed_provider: _Optional[_Union[PushProvider, str]] = ...) -> None: ...

class PushPayloadRelayed(_message.Message):
    __slots__ = ("call", "message", "expires_at_ms")
    CALL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    call: CallPush
    message: MessagePush
    expires_at_ms: int
    def __init__(self, call: _Optional[_Union[CallPush, _Mapping]] = ..., message: _Optional[_Union[MessagePush, _Mapping]] = ..., expires_at_ms: _Optional[int] = ...) -> None: ...

class CallPush(_message.Message):
    __slots__ = ("call_id", "caller_user_id", "headers", "video", "started_at_ms", "ring_until_ms")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_USER_ID_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RING_UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    caller_user_id: str
    headers: _containers.ScalarMap[str, str]
    video: bool
    started_at_ms: int
    ring_until_ms: int
    def __init__(self, call_id: _Optional[str] = ..., caller_user_id: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., video: _Optional[bool] = ..., started_at_ms: _Optional[int] = ..., ring_until_ms: _Optional[int] = ...) -> None: ...

class MessagePush(_message.Message):
    __slots__ = ("message_id", "sender_id", "timestamp_ms")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    sender_id: str
    timestamp_ms: int
    def __init__(self, message_id: _Optional[str] = ..., sender_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class PushPayloadBody(_message.Message):
    __slots__ = ("application_key", "recipient_user_id", "call", "message", "expires_at_ms")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_USER_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    recipient_user_id: str
    call: CallPush
    message: MessagePush
    expires_at_ms: int
    def __init__(self, application_key: _Optional[str] = ..., recipient_user_id: _Optional[str] = ..., call: _Optional[_Union[CallPush, _Mapping]] = ..., message: _Optional[_Union[MessagePush, _Mapping]] = ..., expires_at_ms: _Optional[int] = ...) -> None: ...

class NotifyRequest(_message.Message):
    __slots__ = ("application_key", "recipient_ids", "call", "message", "pairs_only")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PAIRS_ONLY_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    recipient_ids: _containers.RepeatedScalarFieldContainer[str]
    call: CallPush
    message: MessagePush
    pairs_only: bool
    def __init__(self, application_key: _Optional[str] = ..., recipient_ids: _Optional[_Iterable[str]] = ..., call: _Optional[_Union[CallPush, _Mapping]] = ..., message: _Optional[_Union[MessagePush, _Mapping]] = ..., pairs_only: _Optional[bool] = ...) -> None: ...

class NotifyReply(_message.Message):
    __slots__ = ("recipients",)
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    recipients: _containers.RepeatedCompositeFieldContainer[RecipientPushPairs]
    def __init__(self, recipients: _Optional[_Iterable[_Union[RecipientPushPairs, _Mapping]]] = ...) -> None: ...

class RecipientPushPairs(_message.Message):
    __slots__ = ("recipient_id", "push_pairs", "managed")
    RECIPIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PUSH_PAIRS_FIELD_NUMBER: _ClassVar[int]
    MANAGED_FIELD_NUMBER: _ClassVar[int]
    recipient_id: str
    push_pairs: _containers.RepeatedCompositeFieldContainer[_common_pb2.PushPair]
    managed: int
    def __init__(self, recipient_id: _Optional[str] = ..., push_pairs: _Optional[_Iterable[_Union[_common_pb2.PushPair, _Mapping]]] = ..., managed: _Optional[int] = ...) -> None: ...

class PushJob(_message.Message):
    __slots__ = ("application_key", "recipient_user_id", "instance_id", "provider", "token", "payload", "kind", "collapse_id", "enqueued_at_ms", "expires_at_ms")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_USER_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    COLLAPSE_ID_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    recipient_user_id: str
    instance_id: str
    provider: PushProvider
    token: str
    payload: str
    kind: str
    collapse_id: str
    enqueued_at_ms: int
    expires_at_ms: int
    def __init__(self, application_key: _Optional[str] = ..., recipient_user_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., provider: _Optional[_Union[PushProvider, str]] = ..., token: _Optional[str] = ..., payload: _Optional[str] = ..., kind: _Optional[str] = ..., collapse_id: _Optional[str] = ..., enqueued_at_ms: _Optional[int] = ..., expires_at_ms: _Optional[int] = ...) -> None: ...
