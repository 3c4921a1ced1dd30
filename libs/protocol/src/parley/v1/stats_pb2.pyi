from parley.v1 import calls_pb2 as _calls_pb2
from parley.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CallDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_DIRECTION_UNSPECIFIED: _ClassVar[CallDirection]
    CALL_DIRECTION_OUTGOING: _ClassVar[CallDirection]
    CALL_DIRECTION_INCOMING: _ClassVar[CallDirection]
CALL_DIRECTION_UNSPECIFIED: CallDirection
CALL_DIRECTION_OUTGOING: CallDirection
CALL_DIRECTION_INCOMING: CallDirection

class MediaStats(_message.Message):
    __slots__ = ("packets", "packets_lost", "bytes", "bitrate_bps", "jitter_ms", "audio_level")
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    PACKETS_LOST_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    BITRATE_BPS_FIELD_NUMBER: _ClassVar[int]
    JITTER_MS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_LEVEL_FIELD_NUMBER: _ClassVar[int]
    packets: int
    packets_lost: int
    bytes: int
    bitrate_bps: int
    jitter_ms: float
    audio_level: float
    def __init__(self, packets: _Optional[int] = ..., packets_lost: _Optional[int] = ..., bytes: _Optional[int] = ..., bitrate_bps: _Optional[int] = ..., jitter_ms: _Optional[float] = ..., audio_level: _Optional[float] = ...) -> None: ...

class UploadCallReport(_message.Message):
    __slots__ = ("call_id", "kind", "direction", "remote", "end_cause", "error_code", "started_at_ms", "setup_ms", "ringing_ms", "talk_ms", "codec", "rtt_ms", "sent", "received", "mos", "warnings")
    class WarningsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    REMOTE_FIELD_NUMBER: _ClassVar[int]
    END_CAUSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SETUP_MS_FIELD_NUMBER: _ClassVar[int]
    RINGING_MS_FIELD_NUMBER: _ClassVar[int]
    TALK_MS_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    MOS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    kind: _calls_pb2.CallKind
    direction: CallDirection
    remote: str
    end_cause: _calls_pb2.CallEndCause
    error_code: str
    started_at_ms: int
    setup_ms: int
    ringing_ms: int
    talk_ms: int
    codec: str
    rtt_ms: float
    sent: MediaStats
    received: MediaStats
    mos: float
    warnings: _containers.ScalarMap[str, int]
    def __init__(self, call_id: _Optional[str] = ..., kind: _Optional[_Union[_calls_pb2.CallKind, str]] = ..., direction: _Optional[_Union[CallDirection, str]] = ..., remote: _Optional[str] = ..., end_cause: _Optional[_Union[_calls_pb2.CallEndCause, str]] = ..., error_code: _Optional[str] = ..., started_at_ms: _Optional[int] = ..., setup_ms: _Optional[int] = ..., ringing_ms: _Optional[int] = ..., talk_ms: _Optional[int] = ..., codec: _Optional[str] = ..., rtt_ms: _Optional[float] = ..., sent: _Optional[_Union[MediaStats, _Mapping]] = ..., received: _Optional[_Union[MediaStats, _Mapping]] = ..., mos: _Optional[float] = ..., warnings: _Optional[_Mapping[str, int]] = ...) -> None: ...

class CallReportAccepted(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    def __init__(self, stored: _Optional[bool] = ...) -> None: ...

class CallReportRecord(_message.Message):
    __slots__ = ("application_key", "user_id", "device_instance_id", "received_at_ms", "report")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    user_id: str
    device_instance_id: str
    received_at_ms: int
    report: UploadCallReport
    def __init__(self, application_key: _Optional[str] = ..., user_id: _Optional[str] = ..., device_instance_id: _Optional[str] = ..., received_at_ms: _Optional[int] = ..., report: _Optional[_Union[UploadCallReport, _Mapping]] = ...) -> None: ...

class CallAggregateQuery(_message.Message):
    __slots__ = ("application_key", "from_ms", "to_ms")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    FROM_MS_FIELD_NUMBER: _ClassVar[int]
    TO_MS_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    from_ms: int
    to_ms: int
    def __init__(self, application_key: _Optional[str] = ..., from_ms: _Optional[int] = ..., to_ms: _Optional[int] = ...) -> None: ...

class CallCount(_message.Message):
    __slots__ = ("kind", "end_cause", "calls")
    KIND_FIELD_NUMBER: _ClassVar[int]
    END_CAUSE_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    kind: _calls_pb2.CallKind
    end_cause: _calls_pb2.CallEndCause
    calls: int
    def __init__(self, kind: _Optional[_Union[_calls_pb2.CallKind, str]] = ..., end_cause: _Optional[_Union[_calls_pb2.CallEndCause, str]] = ..., calls: _Optional[int] = ...) -> None: ...

class Percentiles(_message.Message):
    __slots__ = ("samples", "p50", "p90", "p99")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P90_FIELD_NUMBER: _ClassVar[int]
    P99_FIELD_NUMBER: _ClassVar[int]
    samples: int
    p50: float
    p90: float
    p99: float
    def __init__(self, samples: _Optional[int] = ..., p50: _Optional[float] = ..., p90: _Optional[float] = ..., p99: _Optional[float] = ...) -> None: ...

class CallAggregate(_message.Message):
    __slots__ = ("application_key", "from_ms", "to_ms", "counts", "setup_ms", "mos", "reports")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    FROM_MS_FIELD_NUMBER: _ClassVar[int]
    TO_MS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    SETUP_MS_FIELD_NUMBER: _ClassVar[int]
    MOS_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    from_ms: int
    to_ms: int
    counts: _containers.RepeatedCompositeFieldContainer[CallCount]
    setup_ms: Percentiles
    mos: Percentiles
    reports: int
    def __init__(self, application_key: _Optional[str] = ..., from_ms: _Optional[int] = ..., to_ms: _Optional[int] = ..., counts: _Optional[_Iterable[_Union[CallCount, _Mapping]]] = ..., setup_ms: _Optional[_Union[Percentiles, _Mapping]] = ..., mos: _Optional[_Union[Percentiles, _Mapping]] = ..., reports: _Optional[int] = ...) -> None: ...
