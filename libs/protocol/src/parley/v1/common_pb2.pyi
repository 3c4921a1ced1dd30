from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_BAD_FRAME: _ClassVar[ErrorCode]
    ERROR_CODE_FRAME_TOO_LARGE: _ClassVar[ErrorCode]
    ERROR_CODE_UNKNOWN_MESSAGE: _ClassVar[ErrorCode]
    ERROR_CODE_WRONG_STATE: _ClassVar[ErrorCode]
    ERROR_CODE_BAD_SEQUENCE: _ClassVar[ErrorCode]
    ERROR_CODE_HEARTBEAT_TIMEOUT: _ClassVar[ErrorCode]
    ERROR_CODE_UNAUTHENTICATED: _ClassVar[ErrorCode]
    ERROR_CODE_TOKEN_EXPIRED: _ClassVar[ErrorCode]
    ERROR_CODE_PERMISSION_DENIED: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_SIGNATURE: _ClassVar[ErrorCode]
    ERROR_CODE_SEQUENCE_REUSED: _ClassVar[ErrorCode]
    ERROR_CODE_UNKNOWN_APPLICATION: _ClassVar[ErrorCode]
    ERROR_CODE_WRONG_ENVIRONMENT: _ClassVar[ErrorCode]
    ERROR_CODE_STALE_TIMESTAMP: _ClassVar[ErrorCode]
    ERROR_CODE_CAPABILITY_NOT_ANNOUNCED: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_ARGUMENT: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_USER_ID: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_APPLICATION_KEY: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_PHONE_NUMBER: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_CONFERENCE_ID: _ClassVar[ErrorCode]
    ERROR_CODE_PAYLOAD_TOO_LARGE: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_HEADER: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_UNAVAILABLE: _ClassVar[ErrorCode]
    ERROR_CODE_TIMEOUT: _ClassVar[ErrorCode]
    ERROR_CODE_INTERNAL: _ClassVar[ErrorCode]
    ERROR_CODE_RATE_LIMITED: _ClassVar[ErrorCode]
    ERROR_CODE_INSUFFICIENT_CREDIT: _ClassVar[ErrorCode]
    ERROR_CODE_SIP: _ClassVar[ErrorCode]
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_BAD_FRAME: ErrorCode
ERROR_CODE_FRAME_TOO_LARGE: ErrorCode
ERROR_CODE_UNKNOWN_MESSAGE: ErrorCode
ERROR_CODE_WRONG_STATE: ErrorCode
ERROR_CODE_BAD_SEQUENCE: ErrorCode
ERROR_CODE_HEARTBEAT_TIMEOUT: ErrorCode
ERROR_CODE_UNAUTHENTICATED: ErrorCode
ERROR_CODE_TOKEN_EXPIRED: ErrorCode
ERROR_CODE_PERMISSION_DENIED: ErrorCode
ERROR_CODE_INVALID_SIGNATURE: ErrorCode
ERROR_CODE_SEQUENCE_REUSED: ErrorCode
ERROR_CODE_UNKNOWN_APPLICATION: ErrorCode
ERROR_CODE_WRONG_ENVIRONMENT: ErrorCode
ERROR_CODE_STALE_TIMESTAMP: ErrorCode
ERROR_CODE_CAPABILITY_NOT_ANNOUNCED: ErrorCode
ERROR_CODE_INVALID_ARGUMENT: ErrorCode
ERROR_CODE_INVALID_USER_ID: ErrorCode
ERROR_CODE_INVALID_APPLICATION_KEY: ErrorCode
ERROR_CODE_INVALID_PHONE_NUMBER: ErrorCode
ERROR_CODE_INVALID_CONFERENCE_ID: ErrorCode
ERROR_CODE_PAYLOAD_TOO_LARGE: ErrorCode
ERROR_CODE_INVALID_HEADER: ErrorCode
ERROR_CODE_NOT_FOUND: ErrorCode
ERROR_CODE_UNAVAILABLE: ErrorCode
ERROR_CODE_TIMEOUT: ErrorCode
ERROR_CODE_INTERNAL: ErrorCode
ERROR_CODE_RATE_LIMITED: ErrorCode
ERROR_CODE_INSUFFICIENT_CREDIT: ErrorCode
ERROR_CODE_SIP: ErrorCode

class Error(_message.Message):
    __slots__ = ("code", "reason", "field", "sip_status")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    SIP_STATUS_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    reason: str
    field: str
    sip_status: int
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., reason: _Optional[str] = ..., field: _Optional[str] = ..., sip_status: _Optional[int] = ...) -> None: ...

class PushPair(_message.Message):
    __slots__ = ("push_data", "push_payload")
    PUSH_DATA_FIELD_NUMBER: _ClassVar[int]
    PUSH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    push_data: bytes
    push_payload: bytes
    def __init__(self, push_data: _Optional[bytes] = ..., push_payload: _Optional[bytes] = ...) -> None: ...
