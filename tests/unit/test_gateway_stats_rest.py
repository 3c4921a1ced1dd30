"""GET /v1/stats/calls's pure parts: reading the window's query parameters, and the JSON of
an aggregate."""

from __future__ import annotations

import pytest

from parley.v1 import calls_pb2, stats_pb2
from parley_gateway.stats_rest import aggregate_json, parse_time, stats_window
from parley_protocol.errors import ErrorCode, ParleyError

NOV_1 = 1_793_491_200_000  # 2026-11-01T00:00:00Z


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1793491200000", NOV_1),
        ("2026-11-01T00:00:00Z", NOV_1),
        ("2026-11-01T00:00:00.250Z", NOV_1 + 250),
        ("2026-11-01T01:00:00+01:00", NOV_1),
        ("2026-11-01T01:00:00 01:00", NOV_1),  # a '+' sent unencoded arrives as a space
        ("2026-10-31T23:00:00-01:00", NOV_1),
        (" 2026-11-01T00:00:00Z ", NOV_1),
    ],
)
def test_times_are_iso_8601_with_a_zone_or_milliseconds(text: str, ms: int) -> None:
    assert parse_time([text], "from") == ms


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ([], "is missing"),
        (["1", "2"], "given 2 times"),
        (["yesterday"], "neither"),
        (["2026-11-01T00:00:00"], "no zone"),
        (["2026-11-01"], "no zone"),
        (["2026-13-01T00:00:00Z"], "neither"),
        (["9" * 16], "neither"),
    ],
)
def test_a_bad_time_is_invalid_argument_naming_the_parameter(values: list[str], words: str) -> None:
    with pytest.raises(ParleyError) as info:
        parse_time(values, "to")
    assert (info.value.code, info.value.field) == (ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "to")
    assert words in info.value.reason


def test_the_window_is_checked_naming_from_or_to() -> None:
    assert stats_window([str(NOV_1)], ["2026-11-02T00:00:00Z"]) == (NOV_1, NOV_1 + 86_400_000)
    for start, end, field in [
        ("2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z", "to"),
        ("2026-10-01T00:00:00Z", "2026-11-02T00:00:00Z", "to"),
        ("-1", "5", "from"),
        ("0", "999999999999999", "to"),  # after the year 9999
    ]:
        with pytest.raises(ParleyError) as info:
            stats_window([start], [end])
        assert info.value.field == field


def test_an_aggregate_becomes_json_with_names_and_null_percentiles_without_samples() -> None:
    aggregate = stats_pb2.CallAggregate(
        application_key="196087a1-e815-4bc4-8984-60d8d8a43f1d",
        from_ms=NOV_1,
        to_ms=NOV_1 + 1_500,
        counts=[
            stats_pb2.CallCount(
                kind=calls_pb2.CALL_KIND_SIP,
                end_cause=calls_pb2.CALL_END_CAUSE_OTHER_DEVICE_ANSWERED,
                calls=3,
            ),
            stats_pb2.CallCount(kind=9, end_cause=calls_pb2.CALL_END_CAUSE_HUNG_UP, calls=1),  # type: ignore[arg-type]
        ],
        setup_ms=stats_pb2.Percentiles(samples=4, p50=100.0, p90=200.0, p99=300.0),
        reports=5,
    )
    assert aggregate_json(aggregate) == {
        "application": "196087a1-e815-4bc4-8984-60d8d8a43f1d",
        "from": "2026-11-01T00:00:00.000Z",
        "to": "2026-11-01T00:00:01.500Z",
        "reports": 5,
        "calls": [
            {"kind": "sip", "endCause": "other_device_answered", "calls": 3},
            {"kind": "unknown_9", "endCause": "hung_up", "calls": 1},
        ],
        "setupMs": {"samples": 4, "p50": 100.0, "p90": 200.0, "p99": 300.0},
        "mos": {"samples": 0, "p50": None, "p90": None, "p99": None},
    }
