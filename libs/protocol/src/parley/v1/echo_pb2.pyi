from parley.v1 import options_pb2 as _options_pb2
from parley.v1 import routing_pb2 as _routing_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EchoRequest(_message.Message):
    __slots__ = ("text", "claimed_user_id", "claimed_application_key", "notify_other_devices", "delay_ms")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_USER_ID_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_OTHER_DEVICES_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    text: str
    claimed_user_id: str
    claimed_application_key: str
    notify_other_devices: bool
    delay_ms: int
    def __init__(self, text: _Optional[str] = ..., claimed_user_id: _Optional[str] = ..., claimed_application_key: _Optional[str] = ..., notify_other_devices: _Optional[bool] = ..., delay_ms: _Optional[int] = ...) -> None: ...

class EchoReply(_message.Message):
    __slots__ = ("text", "caller", "answered_by")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_BY_FIELD_NUMBER: _ClassVar[int]
    text: str
    caller: _routing_pb2.Caller
    answered_by: str
    def __init__(self, text: _Optional[str] = ..., caller: _Optional[_Union[_routing_pb2.Caller, _Mapping]] = ..., answered_by: _Optional[str] = ...) -> None: ...

class EchoEvent(_message.Message):
    __slots__ = ("text", "from_connection_id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FROM_CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    from_connection_id: str
    def __init__(self, text: _Optional[str] = ..., from_connection_id: _Optional[str] = ...) -> None: ...
