from parley.v1 import common_pb2 as _common_pb2
from parley.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CallEndCause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_END_CAUSE_UNSPECIFIED: _ClassVar[CallEndCause]
    CALL_END_CAUSE_HUNG_UP: _ClassVar[CallEndCause]
    CALL_END_CAUSE_DENIED: _ClassVar[CallEndCause]
    CALL_END_CAUSE_CANCELED: _ClassVar[CallEndCause]
    CALL_END_CAUSE_NO_ANSWER: _ClassVar[CallEndCause]
    CALL_END_CAUSE_TIMEOUT: _ClassVar[CallEndCause]
    CALL_END_CAUSE_FAILURE: _ClassVar[CallEndCause]
    CALL_END_CAUSE_OTHER_DEVICE_ANSWERED: _ClassVar[CallEndCause]
    CALL_END_CAUSE_INACTIVE: _ClassVar[CallEndCause]
    CALL_END_CAUSE_REMOVED: _ClassVar[CallEndCause]

class CallKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_KIND_UNSPECIFIED: _ClassVar[CallKind]
    CALL_KIND_APP: _ClassVar[CallKind]
    CALL_KIND_PHONE: _ClassVar[CallKind]
    CALL_KIND_SIP: _ClassVar[CallKind]
    CALL_KIND_CONFERENCE: _ClassVar[CallKind]

class CallPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_PHASE_UNSPECIFIED: _ClassVar[CallPhase]
    CALL_PHASE_INITIATING: _ClassVar[CallPhase]
    CALL_PHASE_RINGING: _ClassVar[CallPhase]
    CALL_PHASE_ANSWERED: _ClassVar[CallPhase]
    CALL_PHASE_ENDED: _ClassVar[CallPhase]
CALL_END_CAUSE_UNSPECIFIED: CallEndCause
CALL_END_CAUSE_HUNG_UP: CallEndCause
CALL_END_CAUSE_DENIED: CallEndCause
CALL_END_CAUSE_CANCELED: CallEndCause
CALL_END_CAUSE_NO_ANSWER: CallEndCause
CALL_END_CAUSE_TIMEOUT: CallEndCause
CALL_END_CAUSE_FAILURE: CallEndCause
CALL_END_CAUSE_OTHER_DEVICE_ANSWERED: CallEndCause
CALL_END_CAUSE_INACTIVE: CallEndCause
CALL_END_CAUSE_REMOVED: CallEndCause
CALL_KIND_UNSPECIFIED: CallKind
CALL_KIND_APP: CallKind
CALL_KIND_PHONE: CallKind
CALL_KIND_SIP: CallKind
CALL_KIND_CONFERENCE: CallKind
CALL_PHASE_UNSPECIFIED: CallPhase
CALL_PHASE_INITIATING: CallPhase
CALL_PHASE_RINGING: CallPhase
CALL_PHASE_ANSWERED: CallPhase
CALL_PHASE_ENDED: CallPhase

class StartCall(_message.Message):
    __slots__ = ("call_id", "callee_user_id", "video", "headers", "offer_sdp", "phone_number", "sip_uri", "conference_id")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CALLEE_USER_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    OFFER_SDP_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SIP_URI_FIELD_NUMBER: _ClassVar[int]
    CONFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    callee_user_id: str
    video: bool
    headers: _containers.ScalarMap[str, str]
    offer_sdp: str
    phone_number: str
    sip_uri: str
    conference_id: str
    def __init__(self, call_id: _Optional[str] = ..., callee_user_id: _Optional[str] = ..., video: _Optional[bool] = ..., headers: _Optional[_Mapping[str, str]] = ..., offer_sdp: _Optional[str] = ..., phone_number: _Optional[str] = ..., sip_uri: _Optional[str] = ..., conference_id: _Optional[str] = ...) -> None: ...

class RingCall(_message.Message):
    __slots__ = ("call_id",)
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    def __init__(self, call_id: _Optional[str] = ...) -> None: ...

class AnswerCall(_message.Message):
    __slots__ = ("call_id", "answer_sdp")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_SDP_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    answer_sdp: str
    def __init__(self, call_id: _Optional[str] = ..., answer_sdp: _Optional[str] = ...) -> None: ...

class HangupCall(_message.Message):
    __slots__ = ("call_id", "cause", "error")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    cause: CallEndCause
    error: _common_pb2.Error
    def __init__(self, call_id: _Optional[str] = ..., cause: _Optional[_Union[CallEndCause, str]] = ..., error: _Optional[_Union[_common_pb2.Error, _Mapping]] = ...) -> None: ...

class SendCallSignal(_message.Message):
    __slots__ = ("call_id", "signal")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    signal: CallSignal
    def __init__(self, call_id: _Optional[str] = ..., signal: _Optional[_Union[CallSignal, _Mapping]] = ...) -> None: ...

class CallSignal(_message.Message):
    __slots__ = ("offer_sdp", "answer_sdp", "video_paused", "dtmf")
    OFFER_SDP_FIELD_NUMBER: _ClassVar[int]
    ANSWER_SDP_FIELD_NUMBER: _ClassVar[int]
    VIDEO_PAUSED_FIELD_NUMBER: _ClassVar[int]
    DTMF_FIELD_NUMBER: _ClassVar[int]
    offer_sdp: str
    answer_sdp: str
    video_paused: bool
    dtmf: str
    def __init__(self, offer_sdp: _Optional[str] = ..., answer_sdp: _Optional[str] = ..., video_paused: _Optional[bool] = ..., dtmf: _Optional[str] = ...) -> None: ...

class ClaimCall(_message.Message):
    __slots__ = ("call_id",)
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    def __init__(self, call_id: _Optional[str] = ...) -> None: ...

class GetIceServers(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartCallReply(_message.Message):
    __slots__ = ("call_id", "devices_reached", "push_pairs")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICES_REACHED_FIELD_NUMBER: _ClassVar[int]
    PUSH_PAIRS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    devices_reached: int
    push_pairs: _containers.RepeatedCompositeFieldContainer[_common_pb2.PushPair]
    def __init__(self, call_id: _Optional[str] = ..., devices_reached: _Optional[int] = ..., push_pairs: _Optional[_Iterable[_Union[_common_pb2.PushPair, _Mapping]]] = ...) -> None: ...

class ClaimCallReply(_message.Message):
    __slots__ = ("call_id", "phase", "end_cause", "offered")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    END_CAUSE_FIELD_NUMBER: _ClassVar[int]
    OFFERED_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    phase: CallPhase
    end_cause: CallEndCause
    offered: bool
    def __init__(self, call_id: _Optional[str] = ..., phase: _Optional[_Union[CallPhase, str]] = ..., end_cause: _Optional[_Union[CallEndCause, str]] = ..., offered: _Optional[bool] = ...) -> None: ...

class CallAck(_message.Message):
    __slots__ = ("call_id", "phase")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    phase: CallPhase
    def __init__(self, call_id: _Optional[str] = ..., phase: _Optional[_Union[CallPhase, str]] = ...) -> None: ...

class IceServers(_message.Message):
    __slots__ = ("servers", "expires_at_ms")
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[IceServer]
    expires_at_ms: int
    def __init__(self, servers: _Optional[_Iterable[_Union[IceServer, _Mapping]]] = ..., expires_at_ms: _Optional[int] = ...) -> None: ...

class IceServer(_message.Message):
    __slots__ = ("urls", "username", "credential")
    URLS_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    urls: _containers.RepeatedScalarFieldContainer[str]
    username: str
    credential: str
    def __init__(self, urls: _Optional[_Iterable[str]] = ..., username: _Optional[str] = ..., credential: _Optional[str] = ...) -> None: ...

class CallIncoming(_message.Message):
    __slots__ = ("call_id", "caller_user_id", "video", "headers", "offer_sdp", "started_at_ms", "kind")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_USER_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    OFFER_SDP_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    caller_user_id: str
    video: bool
    headers: _containers.ScalarMap[str, str]
    offer_sdp: str
    started_at_ms: int
    kind: CallKind
    def __init__(self, call_id: _Optional[str] = ..., caller_user_id: _Optional[str] = ..., video: _Optional[bool] = ..., headers: _Optional[_Mapping[str, str]] = ..., offer_sdp: _Optional[str] = ..., started_at_ms: _Optional[int] = ..., kind: _Optional[_Union[CallKind, str]] = ...) -> None: ...

class CallProgressing(_message.Message):
    __slots__ = ("call_id",)
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    def __init__(self, call_id: _Optional[str] = ...) -> None: ...

class CallAnswered(_message.Message):
    __slots__ = ("call_id", "answer_sdp")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_SDP_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    answer_sdp: str
    def __init__(self, call_id: _Optional[str] = ..., answer_sdp: _Optional[str] = ...) -> None: ...

class CallEnded(_message.Message):
    __slots__ = ("call_id", "cause", "error", "ended_at_ms")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    cause: CallEndCause
    error: _common_pb2.Error
    ended_at_ms: int
    def __init__(self, call_id: _Optional[str] = ..., cause: _Optional[_Union[CallEndCause, str]] = ..., error: _Optional[_Union[_common_pb2.Error, _Mapping]] = ..., ended_at_ms: _Optional[int] = ...) -> None: ...

class CallSignalReceived(_message.Message):
    __slots__ = ("call_id", "signal")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    signal: CallSignal
    def __init__(self, call_id: _Optional[str] = ..., signal: _Optional[_Union[CallSignal, _Mapping]] = ...) -> None: ...

class CallRecord(_message.Message):
    __slots__ = ("call_id", "application_key", "caller_user_id", "caller_session_id", "callee_user_id", "video", "headers", "offer_sdp", "phase", "offered_session_ids", "answered_session_id", "started_at_ms", "answered_at_ms", "ended_at_ms", "end_cause", "deadline_ms", "deadline_cause", "kind", "destination")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    CALLER_USER_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CALLEE_USER_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    OFFER_SDP_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    OFFERED_SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    END_CAUSE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_CAUSE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    application_key: str
    caller_user_id: str
    caller_session_id: str
    callee_user_id: str
    video: bool
    headers: _containers.ScalarMap[str, str]
    offer_sdp: str
    phase: CallPhase
    offered_session_ids: _containers.RepeatedScalarFieldContainer[str]
    answered_session_id: str
    started_at_ms: int
    answered_at_ms: int
    ended_at_ms: int
    end_cause: CallEndCause
    deadline_ms: int
    deadline_cause: CallEndCause
    kind: CallKind
    destination: str
    def __init__(self, call_id: _Optional[str] = ..., application_key: _Optional[str] = ..., caller_user_id: _Optional[str] = ..., caller_session_id: _Optional[str] = ..., callee_user_id: _Optional[str] = ..., video: _Optional[bool] = ..., headers: _Optional[_Mapping[str, str]] = ..., offer_sdp: _Optional[str] = ..., phase: _Optional[_Union[CallPhase, str]] = ..., offered_session_ids: _Optional[_Iterable[str]] = ..., answered_session_id: _Optional[str] = ..., started_at_ms: _Optional[int] = ..., answered_at_ms: _Optional[int] = ..., ended_at_ms: _Optional[int] = ..., end_cause: _Optional[_Union[CallEndCause, str]] = ..., deadline_ms: _Optional[int] = ..., deadline_cause: _Optional[_Union[CallEndCause, str]] = ..., kind: _Optional[_Union[CallKind, str]] = ..., destination: _Optional[str] = ...) -> None: ...

class DialRequest(_message.Message):
    __slots__ = ("call",)
    CALL_FIELD_NUMBER: _ClassVar[int]
    call: CallRecord
    def __init__(self, call: _Optional[_Union[CallRecord, _Mapping]] = ...) -> None: ...

class DialReply(_message.Message):
    __slots__ = ("replica_id",)
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    replica_id: str
    def __init__(self, replica_id: _Optional[str] = ...) -> None: ...

class LegEvent(_message.Message):
    __slots__ = ("application_key", "call_ended", "call_signal_received", "call_progressing", "call_answered")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    CALL_ENDED_FIELD_NUMBER: _ClassVar[int]
    CALL_SIGNAL_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    CALL_PROGRESSING_FIELD_NUMBER: _ClassVar[int]
    CALL_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    call_ended: CallEnded
    call_signal_received: CallSignalReceived
    call_progressing: CallProgressing
    call_answered: CallAnswered
    def __init__(self, application_key: _Optional[str] = ..., call_ended: _Optional[_Union[CallEnded, _Mapping]] = ..., call_signal_received: _Optional[_Union[CallSignalReceived, _Mapping]] = ..., call_progressing: _Optional[_Union[CallProgressing, _Mapping]] = ..., call_answered: _Optional[_Union[CallAnswered, _Mapping]] = ...) -> None: ...

class LegIncoming(_message.Message):
    __slots__ = ("call_id", "callee_user_id", "from_number", "headers", "offer_sdp", "kind")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CALLEE_USER_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_NUMBER_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    OFFER_SDP_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    callee_user_id: str
    from_number: str
    headers: _containers.ScalarMap[str, str]
    offer_sdp: str
    kind: CallKind
    def __init__(self, call_id: _Optional[str] = ..., callee_user_id: _Optional[str] = ..., from_number: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., offer_sdp: _Optional[str] = ..., kind: _Optional[_Union[CallKind, str]] = ...) -> None: ...

class LegReport(_message.Message):
    __slots__ = ("application_key", "ring", "answer", "hangup", "signal", "incoming", "start", "session_id")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    RING_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    HANGUP_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    INCOMING_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    ring: RingCall
    answer: AnswerCall
    hangup: HangupCall
    signal: SendCallSignal
    incoming: LegIncoming
    start: StartCall
    session_id: str
    def __init__(self, application_key: _Optional[str] = ..., ring: _Optional[_Union[RingCall, _Mapping]] = ..., answer: _Optional[_Union[AnswerCall, _Mapping]] = ..., hangup: _Optional[_Union[HangupCall, _Mapping]] = ..., signal: _Optional[_Union[SendCallSignal, _Mapping]] = ..., incoming: _Optional[_Union[LegIncoming, _Mapping]] = ..., start: _Optional[_Union[StartCall, _Mapping]] = ..., session_id: _Optional[str] = ...) -> None: ...
