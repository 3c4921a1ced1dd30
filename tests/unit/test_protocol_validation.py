"""Validation rules of the guide: each failure has its specific code and a reason."""

import pytest

from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.validation import (
    validate_application_key,
    validate_conference_id,
    validate_phone_number,
    validate_push_data,
    validate_sip_headers,
    validate_sip_identity,
    validate_user_id,
)


@pytest.mark.parametrize("user_id", ["alice", "a" * 40, "with space", "a.b*c>d", "~!@#$%^&()"])
def test_valid_user_ids(user_id: str) -> None:
    assert validate_user_id(user_id) == user_id


def test_user_id_over_40_characters_is_refused_with_its_length() -> None:
    with pytest.raises(ParleyError) as info:
        validate_user_id("a" * 41)
    assert info.value.code == ErrorCode.ERROR_CODE_INVALID_USER_ID
    assert "41 characters" in info.value.reason
    assert info.value.field == "user_id"


@pytest.mark.parametrize("user_id", ["tab\there", "new\nline", "caf\u00e9", "\x7f", "nul\x00"])
def test_non_printable_user_id_is_refused_naming_the_character(user_id: str) -> None:
    with pytest.raises(ParleyError) as info:
        validate_user_id(user_id)
    assert info.value.code == ErrorCode.ERROR_CODE_INVALID_USER_ID
    assert "printable ASCII" in info.value.reason


def test_empty_user_id_is_refused() -> None:
    with pytest.raises(ParleyError, match="empty"):
        validate_user_id("")


def test_application_key_must_be_a_lowercase_guid() -> None:
    assert validate_application_key("196087a1-e815-4bc4-8984-60d8d8a43f1d")
    for bad in (
        "196087A1-E815-4BC4-8984-60D8D8A43F1D",
        "not-a-key",
        "196087a1e8154bc4898460d8d8a43f1d",
    ):
        with pytest.raises(ParleyError) as info:
            validate_application_key(bad)
        assert info.value.code == ErrorCode.ERROR_CODE_INVALID_APPLICATION_KEY


@pytest.mark.parametrize(
    "number", ["+14155550101", "+46000000000", "+12345678", "+123456789012345"]
)
def test_e164_numbers_accepted(number: str) -> None:
    assert validate_phone_number(number) == number


@pytest.mark.parametrize(
    "number", ["14155550101", "+1234567", "+1234567890123456", "+1 415 555", ""]
)
def test_non_e164_numbers_refused(number: str) -> None:
    with pytest.raises(ParleyError) as info:
        validate_phone_number(number)
    assert info.value.code == ErrorCode.ERROR_CODE_INVALID_PHONE_NUMBER


def test_conference_id_limit_is_64() -> None:
    assert validate_conference_id("c" * 64)
    with pytest.raises(ParleyError) as info:
        validate_conference_id("c" * 65)
    assert info.value.code == ErrorCode.ERROR_CODE_INVALID_CONFERENCE_ID
    assert "65 characters" in info.value.reason


def test_push_data_limit_is_1024_bytes() -> None:
    assert validate_push_data(b"x" * 1024)
    with pytest.raises(ParleyError) as info:
        validate_push_data(b"x" * 1025)
    assert info.value.code == ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE


def test_sip_headers_must_be_prefixed_x() -> None:
    assert validate_sip_headers({"x-topic": "demo", "X-Other": "1"})
    with pytest.raises(ParleyError) as info:
        validate_sip_headers({"topic": "demo"})
    assert info.value.code == ErrorCode.ERROR_CODE_INVALID_HEADER
    assert "'topic'" in info.value.reason


def test_sip_identity_is_user_at_server() -> None:
    assert validate_sip_identity("alice@sip.example.org")
    with pytest.raises(ParleyError):
        validate_sip_identity("no-at-sign")


def test_call_ids_headers_sdp_and_dtmf_are_checked() -> None:
    from parley_protocol import validation as v

    assert v.validate_call_id("0f8c1a3e-1b2c-4d5e-8f90-123456789abc")
    for bad in ("", "not-a-uuid", "0F8C1A3E-1B2C-4D5E-8F90-123456789ABC"):
        with pytest.raises(ParleyError) as info:
            v.validate_call_id(bad)
        assert info.value.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT
    assert v.validate_headers({"topic": "démo"}) == {"topic": "démo"}
    with pytest.raises(ParleyError) as info:
        v.validate_headers({"k": "é" * 512})  # 1 + 1024 bytes
    assert info.value.code == ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE
    assert v.validate_headers({"k": "x" * 1023}) == {"k": "x" * 1023}
    with pytest.raises(ParleyError):
        v.validate_headers({"": "x"})
    assert v.validate_sdp("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n")
    for bad in ("", "hello", "v=0" + "x" * 40_000):
        with pytest.raises(ParleyError):
            v.validate_sdp(bad)
    assert v.validate_dtmf("123#*AD") == "123#*AD"
    for bad in ("", "12x", "1" * 33):
        with pytest.raises(ParleyError):
            v.validate_dtmf(bad)


def test_message_ids_recipients_and_texts_are_checked() -> None:
    from parley_protocol import validation as v

    assert v.validate_message_id("0f8c1a3e-1b2c-4d5e-8f90-123456789abc")
    with pytest.raises(ParleyError):
        v.validate_message_id("nope")
    assert v.validate_recipients(["bob", "a.b *>"]) == ["bob", "a.b *>"]
    for bad, code in (
        ([], ErrorCode.ERROR_CODE_INVALID_ARGUMENT),
        ([f"u{i}" for i in range(11)], ErrorCode.ERROR_CODE_INVALID_ARGUMENT),
        (["bob", "bob"], ErrorCode.ERROR_CODE_INVALID_ARGUMENT),
        (["x" * 41], ErrorCode.ERROR_CODE_INVALID_USER_ID),
    ):
        with pytest.raises(ParleyError) as info:
            v.validate_recipients(bad)
        assert info.value.code == code
    assert len(v.validate_recipients([f"u{i}" for i in range(3)], limit=3)) == 3
    assert v.validate_message_text("é" * 100, limit=200)
    with pytest.raises(ParleyError) as info:
        v.validate_message_text("é" * 101, limit=200)
    assert info.value.code == ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE
