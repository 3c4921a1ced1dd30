"""The app-backend helper's pure parts: room paths, its refusals before sending, and
reading call statistics."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from parley_client.backend import (
    BackendClient,
    CallCount,
    Percentiles,
    call_stats_of,
    conference_path,
)
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


async def test_a_bad_statistics_window_is_refused_before_anything_is_sent() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    async with BackendClient(
        "http://127.0.0.1:1", "196087a1-e815-4bc4-8984-60d8d8a43f1d", "c2VjcmV0"
    ) as backend:
        cases: list[tuple[Any, Any, str]] = [
            (datetime(2026, 11, 1), start, "from_time"),  # no zone
            (start, start, "to_time"),
            (start, start + timedelta(days=32), "to_time"),
            ("yesterday", start, "from_time"),
        ]
        for from_time, to_time, field in cases:
            with pytest.raises(ParleyError) as info:
                await backend.call_stats(from_time, to_time)
            assert (info.value.code, info.value.field) == ("INVALID_ARGUMENT", field)
        with pytest.raises(ParleyError) as info:
            await backend.call_stats(start, start + timedelta(days=1))
        assert info.value.code == "UNAVAILABLE"


def test_call_statistics_are_read_from_the_answer_and_a_malformed_answer_is_internal() -> None:
    answer = {
        "application": "196087a1-e815-4bc4-8984-60d8d8a43f1d",
        "from": "2026-11-01T00:00:00.000Z",
        "to": "2026-11-02T00:00:00.000Z",
        "reports": 3,
        "calls": [{"kind": "app", "endCause": "hung_up", "calls": 2}],
        "setupMs": {"samples": 2, "p50": 150.0, "p90": 190.0, "p99": 199},
        "mos": {"samples": 0, "p50": None, "p90": None, "p99": None},
    }
    stats = call_stats_of(answer)
    assert stats.from_time == datetime(2026, 11, 1, tzinfo=UTC)
    assert stats.to_time - stats.from_time == timedelta(days=1)
    assert stats.calls == (CallCount("app", "hung_up", 2),)
    assert stats.setup_ms == Percentiles(2, 150.0, 190.0, 199.0)
    assert stats.mos == Percentiles(0, None, None, None)
    for broken in ({**answer, "calls": None}, {**answer, "from": "soon"}, {}, []):
        with pytest.raises(ParleyError) as info:
            call_stats_of(broken)
        assert info.value.code == "INTERNAL"
