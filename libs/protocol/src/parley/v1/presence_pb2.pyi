from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class PresenceEntry(_message.Message):
    __slots__ = ("gateway_id", "connection_id", "instance_id", "connected_at_ms", "calling", "messaging", "listening", "user_id")
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CALLING_FIELD_NUMBER: _ClassVar[int]
    MESSAGING_FIELD_NUMBER: _ClassVar[int]
    LISTENING_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    gateway_id: str
    connection_id: str
    instance_id: str
    connected_at_ms: int
    calling: bool
    messaging: bool
    listening: bool
    user_id: str
    def __init__(self, gateway_id: _Optional[str] = ..., connection_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., connected_at_ms: _Optional[int] = ..., calling: _Optional[bool] = ..., messaging: _Optional[bool] = ..., listening: _Optional[bool] = ..., user_id: _Optional[str] = ...) -> None: ...

class GatewayHeartbeat(_message.Message):
    __slots__ = ("gateway_id", "connections", "alive")
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    gateway_id: str
    connections: int
    alive: bool
    def __init__(self, gateway_id: _Optional[str] = ..., connections: _Optional[int] = ..., alive: _Optional[bool] = ...) -> None: ...

class DeviceEvent(_message.Message):
    __slots__ = ("envelope", "except_connection_id")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    EXCEPT_CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    envelope: bytes
    except_connection_id: str
    def __init__(self, envelope: _Optional[bytes] = ..., except_connection_id: _Optional[str] = ...) -> None: ...
