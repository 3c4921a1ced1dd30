"""Framing, subjects, signatures and HTTP problem mapping of parley_protocol."""

import base64
import hashlib

import pytest

from parley_protocol import bodies, framing, subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.http import error_from_problem, problem_body, status_for
from parley_protocol.pb import client
from parley_protocol.signatures import (
    registration_signature,
    self_signed_registration,
    signatures_equal,
)


def test_envelope_round_trip() -> None:
    env = client.Envelope(seq=7, hello=client.Hello(user_id="alice", access_token="t"))
    decoded = framing.decode(framing.encode(env))
    assert decoded.seq == 7
    assert framing.body_name(decoded) == "hello"
    assert decoded.hello.user_id == "alice"


def test_garbage_is_a_bad_frame() -> None:
    with pytest.raises(ParleyError) as info:
        framing.decode(b"\xff\xff\xff\xff garbage")
    assert info.value.code == ErrorCode.ERROR_CODE_BAD_FRAME


def test_oversized_frame_is_refused_before_decoding() -> None:
    with pytest.raises(ParleyError) as info:
        framing.decode(b"\x00" * (framing.MAX_FRAME_BYTES + 1))
    assert info.value.code == ErrorCode.ERROR_CODE_FRAME_TOO_LARGE


def test_empty_envelope_is_an_unknown_message() -> None:
    with pytest.raises(ParleyError) as info:
        framing.decode(client.Envelope(seq=1).SerializeToString())
    assert info.value.code == ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE


def test_client_and_server_bodies_cover_the_oneof() -> None:
    oneof = client.Envelope.DESCRIPTOR.oneofs_by_name["body"]
    names = {f.name for f in oneof.fields}
    assert names == bodies.CLIENT_BODIES | bodies.SERVER_BODIES
    assert not bodies.CLIENT_BODIES & bodies.SERVER_BODIES
    assert not bodies.REPLY_BODIES & bodies.EVENT_BODIES


@pytest.mark.parametrize("user_id", ["alice", "a.b", "x*y", "a>b", "with space", "~" * 40])
def test_user_id_encoding_is_a_safe_subject_token(user_id: str) -> None:
    token = subjects.encode_user_id(user_id)
    assert all(c.isalnum() or c in "-_" for c in token)
    assert subjects.decode_user_id(token) == user_id
    subject = subjects.device_events("196087a1-e815-4bc4-8984-60d8d8a43f1d", user_id)
    assert subject.count(".") == 4  # parley.dev.<app>.<user>.<target>
    assert subjects.user_events("k", user_id).count(".") == 4


def test_guide_signature_matches_its_definition() -> None:
    key, secret = "196087a1-e815-4bc4-8984-60d8d8a43f1d", "oYdgGRXoxEuJhGDY2KQ/HQ=="
    expected = base64.b64encode(hashlib.sha1(f"alice{key}1{secret}".encode()).digest()).decode()
    assert registration_signature("alice", key, 1, secret) == expected
    assert "\n" not in expected


def test_self_signed_signature_depends_on_every_input() -> None:
    key, secret = "196087a1-e815-4bc4-8984-60d8d8a43f1d", "oYdgGRXoxEuJhGDY2KQ/HQ=="
    base = self_signed_registration("alice", key, 1000, secret)
    assert signatures_equal(base, self_signed_registration("alice", key, 1000, secret))
    assert not signatures_equal(base, self_signed_registration("bob", key, 1000, secret))
    assert not signatures_equal(base, self_signed_registration("alice", key, 1001, secret))
    assert not signatures_equal(base, self_signed_registration("alice", key, 1000, "x" + secret))


def test_problem_round_trip_keeps_code_reason_and_field() -> None:
    err = ParleyError(ErrorCode.ERROR_CODE_INVALID_USER_ID, "too long", "user_id")
    body = problem_body(err)
    assert body["status"] == 400 and body["code"] == "INVALID_USER_ID"
    back = error_from_problem(400, body)
    assert (back.code, back.reason, back.field) == (err.code, err.reason, err.field)
    assert status_for(ErrorCode.ERROR_CODE_SEQUENCE_REUSED) == 409
    assert status_for(ErrorCode.ERROR_CODE_UNAVAILABLE) == 503
    assert error_from_problem(503, "<html>").code == ErrorCode.ERROR_CODE_UNAVAILABLE
