from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConferenceChange(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFERENCE_CHANGE_UNSPECIFIED: _ClassVar[ConferenceChange]
    CONFERENCE_CHANGE_JOINED: _ClassVar[ConferenceChange]
    CONFERENCE_CHANGE_LEFT: _ClassVar[ConferenceChange]
    CONFERENCE_CHANGE_MUTED: _ClassVar[ConferenceChange]
    CONFERENCE_CHANGE_UNMUTED: _ClassVar[ConferenceChange]

class ConferenceCommandKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFERENCE_COMMAND_KIND_UNSPECIFIED: _ClassVar[ConferenceCommandKind]
    CONFERENCE_COMMAND_KIND_MUTE: _ClassVar[ConferenceCommandKind]
    CONFERENCE_COMMAND_KIND_UNMUTE: _ClassVar[ConferenceCommandKind]
    CONFERENCE_COMMAND_KIND_KICK: _ClassVar[ConferenceCommandKind]
CONFERENCE_CHANGE_UNSPECIFIED: ConferenceChange
CONFERENCE_CHANGE_JOINED: ConferenceChange
CONFERENCE_CHANGE_LEFT: ConferenceChange
CONFERENCE_CHANGE_MUTED: ConferenceChange
CONFERENCE_CHANGE_UNMUTED: ConferenceChange
CONFERENCE_COMMAND_KIND_UNSPECIFIED: ConferenceCommandKind
CONFERENCE_COMMAND_KIND_MUTE: ConferenceCommandKind
CONFERENCE_COMMAND_KIND_UNMUTE: ConferenceCommandKind
CONFERENCE_COMMAND_KIND_KICK: ConferenceCommandKind

class ConferenceParticipant(_message.Message):
    __slots__ = ("call_id", "user_id", "number", "muted", "joined_at_ms")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    MUTED_FIELD_NUMBER: _ClassVar[int]
    JOINED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    user_id: str
    number: str
    muted: bool
    joined_at_ms: int
    def __init__(self, call_id: _Optional[str] = ..., user_id: _Optional[str] = ..., number: _Optional[str] = ..., muted: _Optional[bool] = ..., joined_at_ms: _Optional[int] = ...) -> None: ...

class ConferenceChanged(_message.Message):
    __slots__ = ("call_id", "conference_id", "change", "participant", "participants")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CONFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    conference_id: str
    change: ConferenceChange
    participant: ConferenceParticipant
    participants: _containers.RepeatedCompositeFieldContainer[ConferenceParticipant]
    def __init__(self, call_id: _Optional[str] = ..., conference_id: _Optional[str] = ..., change: _Optional[_Union[ConferenceChange, str]] = ..., participant: _Optional[_Union[ConferenceParticipant, _Mapping]] = ..., participants: _Optional[_Iterable[_Union[ConferenceParticipant, _Mapping]]] = ...) -> None: ...

class ConferenceQuery(_message.Message):
    __slots__ = ("application_key", "conference_id")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    CONFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    conference_id: str
    def __init__(self, application_key: _Optional[str] = ..., conference_id: _Optional[str] = ...) -> None: ...

class ConferenceInfo(_message.Message):
    __slots__ = ("conference_id", "participants", "now_ms")
    CONFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    NOW_MS_FIELD_NUMBER: _ClassVar[int]
    conference_id: str
    participants: _containers.RepeatedCompositeFieldContainer[ConferenceParticipant]
    now_ms: int
    def __init__(self, conference_id: _Optional[str] = ..., participants: _Optional[_Iterable[_Union[ConferenceParticipant, _Mapping]]] = ..., now_ms: _Optional[int] = ...) -> None: ...

class ConferenceCommand(_message.Message):
    __slots__ = ("application_key", "conference_id", "call_id", "command")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    CONFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    conference_id: str
    call_id: str
    command: ConferenceCommandKind
    def __init__(self, application_key: _Optional[str] = ..., conference_id: _Optional[str] = ..., call_id: _Optional[str] = ..., command: _Optional[_Union[ConferenceCommandKind, str]] = ...) -> None: ...

class ConferenceCommandReply(_message.Message):
    __slots__ = ("affected",)
    AFFECTED_FIELD_NUMBER: _ClassVar[int]
    affected: int
    def __init__(self, affected: _Optional[int] = ...) -> None: ...

class ConferenceCallout(_message.Message):
    __slots__ = ("application_key", "conference_id", "user_id", "phone_number", "sip_uri", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    CONFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SIP_URI_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    conference_id: str
    user_id: str
    phone_number: str
    sip_uri: str
    headers: _containers.ScalarMap[str, str]
    def __init__(self, application_key: _Optional[str] = ..., conference_id: _Optional[str] = ..., user_id: _Optional[str] = ..., phone_number: _Optional[str] = ..., sip_uri: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ConferenceCalloutReply(_message.Message):
    __slots__ = ("call_id",)
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    def __init__(self, call_id: _Optional[str] = ...) -> None: ...

class RoomPlacement(_message.Message):
    __slots__ = ("replica_id", "placed_at_ms")
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    PLACED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    replica_id: str
    placed_at_ms: int
    def __init__(self, replica_id: _Optional[str] = ..., placed_at_ms: _Optional[int] = ...) -> None: ...

class ReplicaLoad(_message.Message):
    __slots__ = ("replica_id", "rooms", "participants", "updated_at_ms", "draining")
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    replica_id: str
    rooms: int
    participants: int
    updated_at_ms: int
    draining: bool
    def __init__(self, replica_id: _Optional[str] = ..., rooms: _Optional[int] = ..., participants: _Optional[int] = ..., updated_at_ms: _Optional[int] = ..., draining: _Optional[bool] = ...) -> None: ...
