"""App backends' REST request signatures (parley_protocol.signatures), checked against
digests computed here by hand with hmac, hashlib and base64."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

import pytest

from parley_protocol import signatures
from parley_protocol.signatures import (
    format_rest_timestamp,
    parse_rest_timestamp,
    rest_content_hash,
    rest_signature,
    rest_string_to_sign,
    sign_rest_request,
)

KEY = "196087a1-e815-4bc4-8984-60d8d8a43f1d"
SECRET = "oYdgGRXoxEuJhGDY2KQ/HQ=="  # base64 of 16 bytes, as auth makes them
STAMP = "2026-11-30T18:00:00Z"


def by_hand(secret_b64: str, text: str) -> str:
    key = base64.b64decode(secret_b64)
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode()


def test_a_get_without_a_body_signs_five_lines_with_empty_hash_and_type() -> None:
    path = "/v1/conferences/id/room%201"
    text = rest_string_to_sign("get", "", "", STAMP, path)
    assert text == "GET\n\n\nx-timestamp:2026-11-30T18:00:00Z\n/v1/conferences/id/room%201"
    assert rest_signature(SECRET, text) == by_hand(SECRET, text)
    # Pinned (computed once with a command-line HMAC tool), so the scheme cannot drift.
    assert rest_signature(SECRET, text) == "EoTOvjVyvKcGRnojtdLIxF3Dzmyfab9kvKBHq/UeB3k="


def test_the_hmac_key_is_the_decoded_secret_not_its_text() -> None:
    text = rest_string_to_sign("GET", "", "", STAMP, "/v1/conferences/id/x")
    as_text = base64.b64encode(
        hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).digest()
    ).decode()
    assert rest_signature(SECRET, text) != as_text
    with pytest.raises(ValueError, match="not base64"):
        rest_signature("not base64!", text)


def test_body_hashes_are_base64_of_md5_or_sha256_and_empty_for_no_body() -> None:
    body = b'{"command":"mute"}'
    assert rest_content_hash(body, "md5") == base64.b64encode(hashlib.md5(body).digest()).decode()
    assert rest_content_hash(body, "sha256") == (
        base64.b64encode(hashlib.sha256(body).digest()).decode()
    )
    assert rest_content_hash(b"", "md5") == ""
    assert rest_content_hash(b"", "sha256") == ""
    with pytest.raises(ValueError):
        rest_content_hash(body, "sha1")


@pytest.mark.parametrize("hash_header", ["x-content-sha256", "Content-MD5"])
def test_sign_rest_request_gives_headers_that_verify_by_hand(hash_header: str) -> None:
    body = b'{"command":"unmute"}'
    path = "/v1/conferences/id/a%20b.c%2A%3E/5f0c?x=1&y=%2F"
    headers = sign_rest_request(
        KEY, SECRET, "PATCH", path, body, "application/json", STAMP, hash_header=hash_header
    )
    digest = hashlib.sha256(body) if hash_header == "x-content-sha256" else hashlib.md5(body)
    content_hash = base64.b64encode(digest.digest()).decode()
    assert headers[hash_header] == content_hash
    assert headers["Content-Type"] == "application/json"
    assert headers["x-timestamp"] == STAMP
    other = "Content-MD5" if hash_header == "x-content-sha256" else "x-content-sha256"
    assert other not in headers
    text = f"PATCH\n{content_hash}\napplication/json\nx-timestamp:{STAMP}\n{path}"
    assert headers["Authorization"] == f"Application {KEY}:{by_hand(SECRET, text)}"


def test_the_query_string_and_the_encoding_of_the_path_are_signed_as_sent() -> None:
    base = sign_rest_request(KEY, SECRET, "GET", "/v1/conferences/id/a%20b", timestamp=STAMP)
    for other in (
        "/v1/conferences/id/a%20b?x=1",
        "/v1/conferences/id/a+b",
        "/v1/conferences/id/a b",
    ):
        moved = sign_rest_request(KEY, SECRET, "GET", other, timestamp=STAMP)
        assert moved["Authorization"] != base["Authorization"], other
    text = f"GET\n\n\nx-timestamp:{STAMP}\n/v1/conferences/id/a%20b?x=1"
    query = sign_rest_request(KEY, SECRET, "GET", "/v1/conferences/id/a%20b?x=1", timestamp=STAMP)
    assert query["Authorization"].endswith(":" + by_hand(SECRET, text))


def test_a_request_without_a_body_carries_no_hash_header_and_no_content_type() -> None:
    headers = sign_rest_request(KEY, SECRET, "DELETE", "/v1/conferences/id/x", timestamp=STAMP)
    assert set(headers) == {"Authorization", "x-timestamp"}


def test_each_signed_part_changes_the_signature() -> None:
    parts = ("POST", "hash", "application/json", STAMP, "/v1/callouts")
    base = rest_signature(SECRET, rest_string_to_sign(*parts))
    for index, changed in enumerate(("PUT", "hash2", "text/plain", STAMP[:-1] + ".1Z", "/v1/x")):
        varied = list(parts)
        varied[index] = changed
        assert rest_signature(SECRET, rest_string_to_sign(*varied)) != base, index
    other_secret = base64.b64encode(b"0123456789abcdef").decode()
    assert rest_signature(other_secret, rest_string_to_sign(*parts)) != base


def test_timestamps_are_formatted_in_utc_with_a_z() -> None:
    when = datetime(2026, 11, 30, 18, 0, 0, tzinfo=UTC)
    assert format_rest_timestamp(when) == STAMP
    assert format_rest_timestamp(when.timestamp() + 0.25) == "2026-11-30T18:00:00.250Z"
    berlin = when.astimezone(timezone(timedelta(hours=1)))
    assert format_rest_timestamp(berlin) == STAMP
    with pytest.raises(ValueError):
        format_rest_timestamp(datetime(2026, 11, 30, 18))
    headers = sign_rest_request(KEY, SECRET, "GET", "/", timestamp=when)
    assert headers["x-timestamp"] == STAMP


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("2026-11-30T18:00:00Z", 0.0),
        ("2026-11-30T18:00:00z", 0.0),
        ("2026-11-30T18:00:00.5Z", 0.5),
        ("2026-11-30T18:00:00.123456789Z", 0.123456789),
        ("2026-11-30T19:30:00+01:30", 0.0),
        ("2026-11-30T17:00:00-01:00", 0.0),
        (" 2026-11-30T18:00:00Z ", 0.0),
    ],
)
def test_timestamps_parse_with_a_z_an_offset_or_fractions(text: str, offset: float) -> None:
    base = datetime(2026, 11, 30, 18, tzinfo=UTC).timestamp()
    parsed = parse_rest_timestamp(text)
    assert parsed is not None and parsed == pytest.approx(base + offset, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-30T18:00:00",  # no zone: names no instant
        "2026-11-30 18:00:00Z",
        "2026-11-30",
        "20261130T180000Z",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-30T24:00:00Z",
        "2026-11-30T18:00:00+24:00",
        "2026-11-30T18:00:00.Z",
        "1764525600",
        "Mon, 30 Nov 2026 18:00:00 GMT",
    ],
)
def test_other_timestamps_do_not_parse(text: str) -> None:
    assert parse_rest_timestamp(text) is None


def test_signatures_equal_is_the_comparison_to_use() -> None:
    sig = rest_signature(SECRET, "x")
    assert signatures.signatures_equal(sig, rest_signature(SECRET, "x"))
    assert not signatures.signatures_equal(sig, rest_signature(SECRET, "y"))
