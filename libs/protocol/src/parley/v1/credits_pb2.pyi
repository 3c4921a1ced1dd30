from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ReserveCreditRequest(_message.Message):
    __slots__ = ("application_key", "call_id", "number")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    call_id: str
    number: str
    def __init__(self, application_key: _Optional[str] = ..., call_id: _Optional[str] = ..., number: _Optional[str] = ...) -> None: ...

class ReserveCreditReply(_message.Message):
    __slots__ = ("rate_per_minute", "max_seconds", "reserved", "currency")
    RATE_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    rate_per_minute: int
    max_seconds: int
    reserved: int
    currency: str
    def __init__(self, rate_per_minute: _Optional[int] = ..., max_seconds: _Optional[int] = ..., reserved: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class TouchCreditRequest(_message.Message):
    __slots__ = ("application_key", "call_id", "duration_ms")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    call_id: str
    duration_ms: int
    def __init__(self, application_key: _Optional[str] = ..., call_id: _Optional[str] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class TouchCreditReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SettleCreditRequest(_message.Message):
    __slots__ = ("application_key", "call_id", "duration_ms")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    call_id: str
    duration_ms: int
    def __init__(self, application_key: _Optional[str] = ..., call_id: _Optional[str] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class SettleCreditReply(_message.Message):
    __slots__ = ("amount", "balance", "duration_seconds")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    amount: int
    balance: int
    duration_seconds: int
    def __init__(self, amount: _Optional[int] = ..., balance: _Optional[int] = ..., duration_seconds: _Optional[int] = ...) -> None: ...
