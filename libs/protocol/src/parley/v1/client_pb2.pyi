from parley.v1 import common_pb2 as _common_pb2
from parley.v1 import echo_pb2 as _echo_pb2
from parley.v1 import options_pb2 as _options_pb2
from parley.v1 import presence_pb2 as _presence_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResumeOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESUME_OUTCOME_UNSPECIFIED: _ClassVar[ResumeOutcome]
    RESUME_OUTCOME_RESUMED: _ClassVar[ResumeOutcome]
    RESUME_OUTCOME_EXPIRED: _ClassVar[ResumeOutcome]
    RESUME_OUTCOME_REFUSED: _ClassVar[ResumeOutcome]
    RESUME_OUTCOME_OVERFLOWED: _ClassVar[ResumeOutcome]
    RESUME_OUTCOME_DISABLED: _ClassVar[ResumeOutcome]
RESUME_OUTCOME_UNSPECIFIED: ResumeOutcome
RESUME_OUTCOME_RESUMED: ResumeOutcome
RESUME_OUTCOME_EXPIRED: ResumeOutcome
RESUME_OUTCOME_REFUSED: ResumeOutcome
RESUME_OUTCOME_OVERFLOWED: ResumeOutcome
RESUME_OUTCOME_DISABLED: ResumeOutcome

class Envelope(_message.Message):
    __slots__ = ("seq", "reply_to", "traceparent", "event", "ack", "hello", "ping", "refresh_token", "presence_query", "goodbye", "listen", "welcome", "pong", "error", "presence_result", "token_accepted", "listen_accepted", "echo_request", "echo_reply", "echo_event")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_QUERY_FIELD_NUMBER: _ClassVar[int]
    GOODBYE_FIELD_NUMBER: _ClassVar[int]
    LISTEN_FIELD_NUMBER: _ClassVar[int]
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_RESULT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    LISTEN_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ECHO_REQUEST_FIELD_NUMBER: _ClassVar[int]
    ECHO_REPLY_FIELD_NUMBER: _ClassVar[int]
    ECHO_EVENT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    reply_to: int
    traceparent: str
    event: int
    ack: int
    hello: Hello
    ping: Ping
    refresh_token: RefreshToken
    presence_query: _presence_pb2.PresenceQuery
    goodbye: Goodbye
    listen: Listen
    welcome: Welcome
    pong: Pong
    error: _common_pb2.Error
    presence_result: _presence_pb2.PresenceResult
    token_accepted: TokenAccepted
    listen_accepted: ListenAccepted
    echo_request: _echo_pb2.EchoRequest
    echo_reply: _echo_pb2.EchoReply
    echo_event: _echo_pb2.EchoEvent
    def __init__(self, seq: _Optional[int] = ..., reply_to: _Optional[int] = ..., traceparent: _Optional[str] = ..., event: _Optional[int] = ..., ack: _Optional[int] = ..., hello: _Optional[_Union[Hello, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., refresh_token: _Optional[_Union[RefreshToken, _Mapping]] = ..., presence_query: _Optional[_Union[_presence_pb2.PresenceQuery, _Mapping]] = ..., goodbye: _Optional[_Union[Goodbye, _Mapping]] = ..., listen: _Optional[_Union[Listen, _Mapping]] = ..., welcome: _Optional[_Union[Welcome, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.Error, _Mapping]] = ..., presence_result: _Optional[_Union[_presence_pb2.PresenceResult, _Mapping]] = ..., token_accepted: _Optional[_Union[TokenAccepted, _Mapping]] = ..., listen_accepted: _Optional[_Union[ListenAccepted, _Mapping]] = ..., echo_request: _Optional[_Union[_echo_pb2.EchoRequest, _Mapping]] = ..., echo_reply: _Optional[_Union[_echo_pb2.EchoReply, _Mapping]] = ..., echo_event: _Optional[_Union[_echo_pb2.EchoEvent, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("access_token", "application_key", "user_id", "capabilities", "client_version", "resume_session_id", "resume_from_event")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    CLIENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESUME_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_FROM_EVENT_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    application_key: str
    user_id: str
    capabilities: Capabilities
    client_version: str
    resume_session_id: str
    resume_from_event: int
    def __init__(self, access_token: _Optional[str] = ..., application_key: _Optional[str] = ..., user_id: _Optional[str] = ..., capabilities: _Optional[_Union[Capabilities, _Mapping]] = ..., client_version: _Optional[str] = ..., resume_session_id: _Optional[str] = ..., resume_from_event: _Optional[int] = ...) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("calling", "messaging", "active_connection", "managed_push")
    CALLING_FIELD_NUMBER: _ClassVar[int]
    MESSAGING_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CONNECTION_FIELD_NUMBER: _ClassVar[int]
    MANAGED_PUSH_FIELD_NUMBER: _ClassVar[int]
    calling: bool
    messaging: bool
    active_connection: bool
    managed_push: bool
    def __init__(self, calling: _Optional[bool] = ..., messaging: _Optional[bool] = ..., active_connection: _Optional[bool] = ..., managed_push: _Optional[bool] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("session_id", "gateway_id", "heartbeat_interval_ms", "server_time_ms", "token_expires_at_ms", "resume", "resume_reason")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    RESUME_REASON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    gateway_id: str
    heartbeat_interval_ms: int
    server_time_ms: int
    token_expires_at_ms: int
    resume: ResumeOutcome
    resume_reason: str
    def __init__(self, session_id: _Optional[str] = ..., gateway_id: _Optional[str] = ..., heartbeat_interval_ms: _Optional[int] = ..., server_time_ms: _Optional[int] = ..., token_expires_at_ms: _Optional[int] = ..., resume: _Optional[_Union[ResumeOutcome, str]] = ..., resume_reason: _Optional[str] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("client_time_ms",)
    CLIENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    client_time_ms: int
    def __init__(self, client_time_ms: _Optional[int] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ("client_time_ms", "server_time_ms")
    CLIENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    client_time_ms: int
    server_time_ms: int
    def __init__(self, client_time_ms: _Optional[int] = ..., server_time_ms: _Optional[int] = ...) -> None: ...

class RefreshToken(_message.Message):
    __slots__ = ("access_token",)
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    def __init__(self, access_token: _Optional[str] = ...) -> None: ...

class TokenAccepted(_message.Message):
    __slots__ = ("token_expires_at_ms",)
    TOKEN_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    token_expires_at_ms: int
    def __init__(self, token_expires_at_ms: _Optional[int] = ...) -> None: ...

class Goodbye(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class Listen(_message.Message):
    __slots__ = ("listening",)
    LISTENING_FIELD_NUMBER: _ClassVar[int]
    listening: bool
    def __init__(self, listening: _Optional[bool] = ...) -> None: ...

class ListenAccepted(_message.Message):
    __slots__ = ("listening",)
    LISTENING_FIELD_NUMBER: _ClassVar[int]
    listening: bool
    def __init__(self, listening: _Optional[bool] = ...) -> None: ...
