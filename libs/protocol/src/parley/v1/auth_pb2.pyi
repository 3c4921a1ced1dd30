from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegistrationScheme(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REGISTRATION_SCHEME_UNSPECIFIED: _ClassVar[RegistrationScheme]
    REGISTRATION_SCHEME_APPLICATION_SECRET: _ClassVar[RegistrationScheme]
    REGISTRATION_SCHEME_APPLICATION_SERVER: _ClassVar[RegistrationScheme]
REGISTRATION_SCHEME_UNSPECIFIED: RegistrationScheme
REGISTRATION_SCHEME_APPLICATION_SECRET: RegistrationScheme
REGISTRATION_SCHEME_APPLICATION_SERVER: RegistrationScheme

class RegisterRequest(_message.Message):
    __slots__ = ("application_key", "user_id", "scheme", "signature", "sequence", "timestamp_ms", "device_name")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    user_id: str
    scheme: RegistrationScheme
    signature: str
    sequence: int
    timestamp_ms: int
    device_name: str
    def __init__(self, application_key: _Optional[str] = ..., user_id: _Optional[str] = ..., scheme: _Optional[_Union[RegistrationScheme, str]] = ..., signature: _Optional[str] = ..., sequence: _Optional[int] = ..., timestamp_ms: _Optional[int] = ..., device_name: _Optional[str] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("credential", "token")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    credential: DeviceCredential
    token: AccessToken
    def __init__(self, credential: _Optional[_Union[DeviceCredential, _Mapping]] = ..., token: _Optional[_Union[AccessToken, _Mapping]] = ...) -> None: ...

class DeviceCredential(_message.Message):
    __slots__ = ("instance_id", "instance_secret")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_SECRET_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    instance_secret: str
    def __init__(self, instance_id: _Optional[str] = ..., instance_secret: _Optional[str] = ...) -> None: ...

class AccessToken(_message.Message):
    __slots__ = ("token", "expires_at_ms")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at_ms: int
    def __init__(self, token: _Optional[str] = ..., expires_at_ms: _Optional[int] = ...) -> None: ...

class TokenRequest(_message.Message):
    __slots__ = ("application_key", "user_id", "credential")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    user_id: str
    credential: DeviceCredential
    def __init__(self, application_key: _Optional[str] = ..., user_id: _Optional[str] = ..., credential: _Optional[_Union[DeviceCredential, _Mapping]] = ...) -> None: ...

class TokenResponse(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: AccessToken
    def __init__(self, token: _Optional[_Union[AccessToken, _Mapping]] = ...) -> None: ...

class JwksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JwksResponse(_message.Message):
    __slots__ = ("jwks_json",)
    JWKS_JSON_FIELD_NUMBER: _ClassVar[int]
    jwks_json: str
    def __init__(self, jwks_json: _Optional[str] = ...) -> None: ...

class AppLookupRequest(_message.Message):
    __slots__ = ("application_key",)
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    def __init__(self, application_key: _Optional[str] = ...) -> None: ...

class AppLookupResponse(_message.Message):
    __slots__ = ("application_key", "environment", "account_id", "name")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    environment: str
    account_id: str
    name: str
    def __init__(self, application_key: _Optional[str] = ..., environment: _Optional[str] = ..., account_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class UserLookupRequest(_message.Message):
    __slots__ = ("application_key", "user_id")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    user_id: str
    def __init__(self, application_key: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class UserLookupResponse(_message.Message):
    __slots__ = ("registered", "devices")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    registered: bool
    devices: int
    def __init__(self, registered: _Optional[bool] = ..., devices: _Optional[int] = ...) -> None: ...

class NumberLookupRequest(_message.Message):
    __slots__ = ("number",)
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    number: str
    def __init__(self, number: _Optional[str] = ...) -> None: ...

class NumberLookupResponse(_message.Message):
    __slots__ = ("found", "application_key", "user_id")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    found: bool
    application_key: str
    user_id: str
    def __init__(self, found: _Optional[bool] = ..., application_key: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class VerifyRequestSignature(_message.Message):
    __slots__ = ("application_key", "string_to_sign", "signature")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    STRING_TO_SIGN_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    string_to_sign: str
    signature: str
    def __init__(self, application_key: _Optional[str] = ..., string_to_sign: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class RequestSignatureVerified(_message.Message):
    __slots__ = ("application_key", "environment")
    APPLICATION_KEY_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    application_key: str
    environment: str
    def __init__(self, application_key: _Optional[str] = ..., environment: _Optional[str] = ...) -> None: ...
