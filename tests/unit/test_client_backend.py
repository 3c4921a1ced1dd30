"""The app-backend helper's pure parts: room paths and its refusals before sending."""

from __future__ import annotations

import urllib.parse

import pytest

from parley_client.backend import BackendClient, conference_path
from parley_client.errors import ParleyError


@pytest.mark.parametrize(
    ("conference_id", "path"),
    [
        ("standup", "/v1/conferences/id/standup"),
        ("a b.c*>d", "/v1/conferences/id/a%20b.c%2A%3Ed"),
        ("x/y?z#w", "/v1/conferences/id/x%2Fy%3Fz%23w"),
        ("100%", "/v1/conferences/id/100%25"),
        (".", "/v1/conferences/id/%2E"),
        ("..", "/v1/conferences/id/%2E%2E"),
        ("...", "/v1/conferences/id/..."),
    ],
)
def test_room_paths_are_one_percent_encoded_segment(conference_id: str, path: str) -> None:
    assert conference_path(conference_id) == path
    segment = path.removeprefix("/v1/conferences/id/")
    assert "/" not in segment
    assert urllib.parse.unquote(segment) == conference_id


def test_a_bad_application_key_is_refused_at_once() -> None:
    with pytest.raises(ParleyError) as info:
        BackendClient("http://127.0.0.1:1", "NOT-A-KEY", "c2VjcmV0")
    assert info.value.code == "INVALID_APPLICATION_KEY"


async def test_a_bad_conference_id_is_refused_before_anything_is_sent() -> None:
    # Port 1 refuses connections: reaching the network would be a NETWORK error instead.
    async with BackendClient(
        "http://127.0.0.1:1", "196087a1-e815-4bc4-8984-60d8d8a43f1d", "c2VjcmV0"
    ) as backend:
        for bad in ("", "x" * 65):
            with pytest.raises(ParleyError) as info:
                await backend.kick_all(bad)
            assert info.value.code == "INVALID_CONFERENCE_ID"
        with pytest.raises(ParleyError) as info:
            await backend.kick_all("ok")
        assert info.value.code == "UNAVAILABLE"
