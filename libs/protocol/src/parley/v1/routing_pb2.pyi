from parley.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Caller(_message.Message):
    __slots__ = ("application_key", "user_id", "instance_id", "session_id", "gateway_id", "connection_id", "capabilities")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    user_id: str
    instance_id: str
    session_id: str
    gateway_id: str
    connection_id: str
    capabilities: _containers.RepeatedScalarFieldContainer[_options_pb2.Capability]
    def __init__(self, application_key: _Optional[str] = ..., user_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., session_id: _Optional[str] = ..., gateway_id: _Optional[str] = ..., connection_id: _Optional[str] = ..., capabilities: _Optional[_Iterable[_Union[_options_pb2.Capability, str]]] = ...) -> None: ...

class ClientRequest(_message.Message):
    __slots__ = ("caller", "envelope")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    caller: Caller
    envelope: bytes
    def __init__(self, caller: _Optional[_Union[Caller, _Mapping]] = ..., envelope: _Optional[bytes] = ...) -> None: ...

class DeviceEvent(_message.Message):
    __slots__ = ("envelope", "except_session_id")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    EXCEPT_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    envelope: bytes
    except_session_id: str
    def __init__(self, envelope: _Optional[bytes] = ..., except_session_id: _Optional[str] = ...) -> None: ...
