from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BodyKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BODY_KIND_UNSPECIFIED: _ClassVar[BodyKind]
    BODY_KIND_CLIENT: _ClassVar[BodyKind]
    BODY_KIND_REPLY: _ClassVar[BodyKind]
    BODY_KIND_EVENT: _ClassVar[BodyKind]

class Capability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAPABILITY_NONE: _ClassVar[Capability]
    CAPABILITY_CALLING: _ClassVar[Capability]
    CAPABILITY_MESSAGING: _ClassVar[Capability]
    CAPABILITY_ACTIVE_CONNECTION: _ClassVar[Capability]
    CAPABILITY_MANAGED_PUSH: _ClassVar[Capability]
BODY_KIND_UNSPECIFIED: BodyKind
BODY_KIND_CLIENT: BodyKind
BODY_KIND_REPLY: BodyKind
BODY_KIND_EVENT: BodyKind
CAPABILITY_NONE: Capability
CAPABILITY_CALLING: Capability
CAPABILITY_MESSAGING: Capability
CAPABILITY_ACTIVE_CONNECTION: Capability
CAPABILITY_MANAGED_PUSH: Capability
ROUTE_FIELD_NUMBER: _ClassVar[int]
route: _descriptor.FieldDescriptor
KIND_FIELD_NUMBER: _ClassVar[int]
kind: _descriptor.FieldDescriptor

class Route(_message.Message):
    __slots__ = ("service", "capability", "timeout_ms")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    service: str
    capability: Capability
    timeout_ms: int
    def __init__(self, service: _Optional[str] = ..., capability: _Optional[_Union[Capability, str]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...
