from parley.v1 import calls_pb2 as _calls_pb2
from parley.v1 import common_pb2 as _common_pb2
from parley.v1 import conference_pb2 as _conference_pb2
from parley.v1 import echo_pb2 as _echo_pb2
from parley.v1 import messaging_pb2 as _messaging_pb2
from parley.v1 import options_pb2 as _options_pb2
from parley.v1 import presence_pb2 as _presence_pb2
from parley.v1 import push_pb2 as _push_pb2
from parley.v1 import stats_pb2 as _stats_pb2
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
    __slots__ = ("seq", "reply_to", "traceparent", "event", "ack", "hello", "ping", "refresh_token", "presence_query", "goodbye", "listen", "welcome", "pong", "error", "presence_result", "token_accepted", "listen_accepted", "echo_request", "echo_reply", "echo_event", "start_call", "ring_call", "answer_call", "hangup_call", "send_call_signal", "get_ice_servers", "claim_call", "start_call_reply", "call_ack", "ice_servers", "claim_call_reply", "call_incoming", "call_progressing", "call_answered", "call_ended", "call_signal_received", "send_message", "ack_messages", "fetch_messages", "mark_read", "send_typing", "message_accepted", "message_batch", "messages_acked", "message_incoming", "message_sent", "message_delivered", "message_read", "typing_changed", "register_push_data", "unregister_push_data", "register_managed_push", "unregister_managed_push", "relay_push_payload", "push_registered", "push_payload_relayed", "upload_call_report", "call_report_accepted", "conference_changed")
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
    START_CALL_FIELD_NUMBER: _ClassVar[int]
    RING_CALL_FIELD_NUMBER: _ClassVar[int]
    ANSWER_CALL_FIELD_NUMBER: _ClassVar[int]
    HANGUP_CALL_FIELD_NUMBER: _ClassVar[int]
    SEND_CALL_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    GET_ICE_SERVERS_FIELD_NUMBER: _ClassVar[int]
    CLAIM_CALL_FIELD_NUMBER: _ClassVar[int]
    START_CALL_REPLY_FIELD_NUMBER: _ClassVar[int]
    CALL_ACK_FIELD_NUMBER: _ClassVar[int]
    ICE_SERVERS_FIELD_NUMBER: _ClassVar[int]
    CLAIM_CALL_REPLY_FIELD_NUMBER: _ClassVar[int]
    CALL_INCOMING_FIELD_NUMBER: _ClassVar[int]
    CALL_PROGRESSING_FIELD_NUMBER: _ClassVar[int]
    CALL_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    CALL_ENDED_FIELD_NUMBER: _ClassVar[int]
    CALL_SIGNAL_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    SEND_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ACK_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    FETCH_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MARK_READ_FIELD_NUMBER: _ClassVar[int]
    SEND_TYPING_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_BATCH_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_ACKED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_INCOMING_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_SENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_READ_FIELD_NUMBER: _ClassVar[int]
    TYPING_CHANGED_FIELD_NUMBER: _ClassVar[int]
    REGISTER_PUSH_DATA_FIELD_NUMBER: _ClassVar[int]
    UNREGISTER_PUSH_DATA_FIELD_NUMBER: _ClassVar[int]
    REGISTER_MANAGED_PUSH_FIELD_NUMBER: _ClassVar[int]
    UNREGISTER_MANAGED_PUSH_FIELD_NUMBER: _ClassVar[int]
    RELAY_PUSH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PUSH_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    PUSH_PAYLOAD_RELAYED_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_CALL_REPORT_FIELD_NUMBER: _ClassVar[int]
    CALL_REPORT_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    CONFERENCE_CHANGED_FIELD_NUMBER: _ClassVar[int]
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
    start_call: _calls_pb2.StartCall
    ring_call: _calls_pb2.RingCall
    answer_call: _calls_pb2.AnswerCall
    hangup_call: _calls_pb2.HangupCall
    send_call_signal: _calls_pb2.SendCallSignal
    get_ice_servers: _calls_pb2.GetIceServers
    claim_call: _calls_pb2.ClaimCall
    start_call_reply: _calls_pb2.StartCallReply
    call_ack: _calls_pb2.CallAck
    ice_servers: _calls_pb2.IceServers
    claim_call_reply: _calls_pb2.ClaimCallReply
    call_incoming: _calls_pb2.CallIncoming
    call_progressing: _calls_pb2.CallProgressing
    call_answered: _calls_pb2.CallAnswered
    call_ended: _calls_pb2.CallEnded
    call_signal_received: _calls_pb2.CallSignalReceived
    send_message: _messaging_pb2.SendMessage
    ack_messages: _messaging_pb2.AckMessages
    fetch_messages: _messaging_pb2.FetchMessages
    mark_read: _messaging_pb2.MarkRead
    send_typing: _messaging_pb2.SendTyping
    message_accepted: _messaging_pb2.MessageAccepted
    message_batch: _messaging_pb2.MessageBatch
    messages_acked: _messaging_pb2.MessagesAcked
    message_incoming: _messaging_pb2.MessageIncoming
    message_sent: _messaging_pb2.MessageSent
    message_delivered: _messaging_pb2.MessageDelivered
    message_read: _messaging_pb2.MessageRead
    typing_changed: _messaging_pb2.TypingChanged
    register_push_data: _push_pb2.RegisterPushData
    unregister_push_data: _push_pb2.UnregisterPushData
    register_managed_push: _push_pb2.RegisterManagedPush
    unregister_managed_push: _push_pb2.UnregisterManagedPush
    relay_push_payload: _push_pb2.RelayPushPayload
    push_registered: _push_pb2.PushRegistered
    push_payload_relayed: _push_pb2.PushPayloadRelayed
    upload_call_report: _stats_pb2.UploadCallReport
    call_report_accepted: _stats_pb2.CallReportAccepted
    conference_changed: _conference_pb2.ConferenceChanged
    def __init__(self, seq: _Optional[int] = ..., reply_to: _Optional[int] = ..., traceparent: _Optional[str] = ..., event: _Optional[int] = ..., ack: _Optional[int] = ..., hello: _Optional[_Union[Hello, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., refresh_token: _Optional[_Union[RefreshToken, _Mapping]] = ..., presence_query: _Optional[_Union[_presence_pb2.PresenceQuery, _Mapping]] = ..., goodbye: _Optional[_Union[Goodbye, _Mapping]] = ..., listen: _Optional[_Union[Listen, _Mapping]] = ..., welcome: _Optional[_Union[Welcome, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.Error, _Mapping]] = ..., presence_result: _Optional[_Union[_presence_pb2.PresenceResult, _Mapping]] = ..., token_accepted: _Optional[_Union[TokenAccepted, _Mapping]] = ..., listen_accepted: _Optional[_Union[ListenAccepted, _Mapping]] = ..., echo_request: _Optional[_Union[_echo_pb2.EchoRequest, _Mapping]] = ..., echo_reply: _Optional[_Union[_echo_pb2.EchoReply, _Mapping]] = ..., echo_event: _Optional[_Union[_echo_pb2.EchoEvent, _Mapping]] = ..., start_call: _Optional[_Union[_calls_pb2.StartCall, _Mapping]] = ..., ring_call: _Optional[_Union[_calls_pb2.RingCall, _Mapping]] = ..., answer_call: _Optional[_Union[_calls_pb2.AnswerCall, _Mapping]] = ..., hangup_call: _Optional[_Union[_calls_pb2.HangupCall, _Mapping]] = ..., send_call_signal: _Optional[_Union[_calls_pb2.SendCallSignal, _Mapping]] = ..., get_ice_servers: _Optional[_Union[_calls_pb2.GetIceServers, _Mapping]] = ..., claim_call: _Optional[_Union[_calls_pb2.ClaimCall, _Mapping]] = ..., start_call_reply: _Optional[_Union[_calls_pb2.StartCallReply, _Mapping]] = ..., call_ack: _Optional[_Union[_calls_pb2.CallAck, _Mapping]] = ..., ice_servers: _Optional[_Union[_calls_pb2.IceServers, _Mapping]] = ..., claim_call_reply: _Optional[_Union[_calls_pb2.ClaimCallReply, _Mapping]] = ..., call_incoming: _Optional[_Union[_calls_pb2.CallIncoming, _Mapping]] = ..., call_progressing: _Optional[_Union[_calls_pb2.CallProgressing, _Mapping]] = ..., call_answered: _Optional[_Union[_calls_pb2.CallAnswered, _Mapping]] = ..., call_ended: _Optional[_Union[_calls_pb2.CallEnded, _Mapping]] = ..., call_signal_received: _Optional[_Union[_calls_pb2.CallSignalReceived, _Mapping]] = ..., send_message: _Optional[_Union[_messaging_pb2.SendMessage, _Mapping]] = ..., ack_messages: _Optional[_Union[_messaging_pb2.AckMessages, _Mapping]] = ..., fetch_messages: _Optional[_Union[_messaging_pb2.FetchMessages, _Mapping]] = ..., mark_read: _Optional[_Union[_messaging_pb2.MarkRead, _Mapping]] = ..., send_typing: _Optional[_Union[_messaging_pb2.SendTyping, _Mapping]] = ..., message_accepted: _Optional[_Union[_messaging_pb2.MessageAccepted, _Mapping]] = ..., message_batch: _Optional[_Union[_messaging_pb2.MessageBatch, _Mapping]] = ..., messages_acked: _Optional[_Union[_messaging_pb2.MessagesAcked, _Mapping]] = ..., message_incoming: _Optional[_Union[_messaging_pb2.MessageIncoming, _Mapping]] = ..., message_sent: _Optional[_Union[_messaging_pb2.MessageSent, _Mapping]] = ..., message_delivered: _Optional[_Union[_messaging_pb2.MessageDelivered, _Mapping]] = ..., message_read: _Optional[_Union[_messaging_pb2.MessageRead, _Mapping]] = ..., typing_changed: _Optional[_Union[_messaging_pb2.TypingChanged, _Mapping]] = ..., register_push_data: _Optional[_Union[_push_pb2.RegisterPushData, _Mapping]] = ..., unregister_push_data: _Optional[_Union[_push_pb2.UnregisterPushData, _Mapping]] = ..., register_managed_push: _Optional[_Union[_push_pb2.RegisterManagedPush, _Mapping]] = ..., unregister_managed_push: _Optional[_Union[_push_pb2.UnregisterManagedPush, _Mapping]] = ..., relay_push_payload: _Optional[_Union[_push_pb2.RelayPushPayload, _Mapping]] = ..., push_registered: _Optional[_Union[_push_pb2.PushRegistered, _Mapping]] = ..., push_payload_relayed: _Optional[_Union[_push_pb2.PushPayloadRelayed, _Mapping]] = ..., upload_call_report: _Optional[_Union[_stats_pb2.UploadCallReport, _Mapping]] = ..., call_report_accepted: _Optional[_Union[_stats_pb2.CallReportAccepted, _Mapping]] = ..., conference_changed: _Optional[_Union[_conference_pb2.ConferenceChanged, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("access_token", "application_key", "user_id", "capabilities", "client_version", "resume_session_id", "resume_from_event", "listening")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    CLIENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESUME_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_FROM_EVENT_FIELD_NUMBER: _ClassVar[int]
    LISTENING_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    application_key: str
    user_id: str
    capabilities: Capabilities
    client_version: str
    resume_session_id: str
    resume_from_event: int
    listening: bool
    def __init__(self, access_token: _Optional[str] = ..., application_key: _Optional[str] = ..., user_id: _Optional[str] = ..., capabilities: _Optional[_Union[Capabilities, _Mapping]] = ..., client_version: _Optional[str] = ..., resume_session_id: _Optional[str] = ..., resume_from_event: _Optional[int] = ..., listening: _Optional[bool] = ...) -> None: ...

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
    __slots__ = ("session_id", "gateway_id", "heartbeat_interval_ms", "server_time_ms", "token_expires_at_ms", "resume", "resume_reason", "listening", "gateway_pings")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    RESUME_REASON_FIELD_NUMBER: _ClassVar[int]
    LISTENING_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_PINGS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    gateway_id: str
    heartbeat_interval_ms: int
    server_time_ms: int
    token_expires_at_ms: int
    resume: ResumeOutcome
    resume_reason: str
    listening: bool
    gateway_pings: bool
    def __init__(self, session_id: _Optional[str] = ..., gateway_id: _Optional[str] = ..., heartbeat_interval_ms: _Optional[int] = ..., server_time_ms: _Optional[int] = ..., token_expires_at_ms: _Optional[int] = ..., resume: _Optional[_Union[ResumeOutcome, str]] = ..., resume_reason: _Optional[str] = ..., listening: _Optional[bool] = ..., gateway_pings: _Optional[bool] = ...) -> None: ...

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
