from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PresenceQuery(_message.Message):
    __slots__ = ("user_ids",)
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PresenceResult(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserPresence]
    def __init__(self, users: _Optional[_Iterable[_Union[UserPresence, _Mapping]]] = ...) -> None: ...

class UserPresence(_message.Message):
    __slots__ = ("user_id", "online", "devices")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    online: bool
    devices: int
    def __init__(self, user_id: _Optional[str] = ..., online: _Optional[bool] = ..., devices: _Optional[int] = ...) -> None: ...

class PresenceEntry(_message.Message):
    __slots__ = ("gateway_id", "connection_id", "instance_id", "connected_at_ms", "calling", "messaging", "listening", "user_id", "active_connection", "managed_push", "session_id", "disconnected_at_ms", "token_digest")
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CALLING_FIELD_NUMBER: _ClassVar[int]
    MESSAGING_FIELD_NUMBER: _ClassVar[int]
    LISTENING_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CONNECTION_FIELD_NUMBER: _ClassVar[int]
    MANAGED_PUSH_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DISCONNECTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_DIGEST_FIELD_NUMBER: _ClassVar[int]
    gateway_id: str
    connection_id: str
    instance_id: str
    connected_at_ms: int
    calling: bool
    messaging: bool
    listening: bool
    user_id: str
    active_connection: bool
    managed_push: bool
    session_id: str
    disconnected_at_ms: int
    token_digest: bytes
    def __init__(self, gateway_id: _Optional[str] = ..., connection_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., connected_at_ms: _Optional[int] = ..., calling: _Optional[bool] = ..., messaging: _Optional[bool] = ..., listening: _Optional[bool] = ..., user_id: _Optional[str] = ..., active_connection: _Optional[bool] = ..., managed_push: _Optional[bool] = ..., session_id: _Optional[str] = ..., disconnected_at_ms: _Optional[int] = ..., token_digest: _Optional[bytes] = ...) -> None: ...

class SessionTakeover(_message.Message):
    __slots__ = ("session_id", "application_key", "user_id", "gateway_id", "connection_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    application_key: str
    user_id: str
    gateway_id: str
    connection_id: str
    def __init__(self, session_id: _Optional[str] = ..., application_key: _Optional[str] = ..., user_id: _Optional[str] = ..., gateway_id: _Optional[str] = ..., connection_id: _Optional[str] = ...) -> None: ...

class GatewayHeartbeat(_message.Message):
    __slots__ = ("gateway_id", "connections", "alive", "interval_ms")
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    gateway_id: str
    connections: int
    alive: bool
    interval_ms: int
    def __init__(self, gateway_id: _Optional[str] = ..., connections: _Optional[int] = ..., alive: _Optional[bool] = ..., interval_ms: _Optional[int] = ...) -> None: ...
