"""GET /v1/stats/calls: an application's call statistics over a window, for its backend.

The window is the query's `from` (inclusive) and `to` (exclusive), each an ISO 8601 date
and time with a zone (`2026-11-30T18:00:00Z`, `...+01:00`; a `+` sent unencoded arrives as
a space and is read as a `+`) or milliseconds since the epoch. The stats service answers a
`CallAggregateQuery`; its `CallAggregate` becomes JSON here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from parley.v1 import calls_pb2, stats_pb2
from parley_gateway.request_body import invalid
from parley_protocol.call_reports import validate_window

STATS_CALLS_PATH = "/v1/stats/calls"
_MILLISECONDS = re.compile(r"-?[0-9]{1,15}")
# "+01:00" sent unencoded in a query arrives as " 01:00".
_SPACED_OFFSET = re.compile(r" ([0-9]{2}(?::?[0-9]{2})?)$")


def parse_time(values: list[str], name: str) -> int:
    """The query parameter `name` (every value it was given) in milliseconds since the
    epoch, or INVALID_ARGUMENT naming it."""
    if not values:
        raise invalid(
            f"the query parameter {name} is missing: an ISO 8601 date and time with a zone "
            "(e.g. 2026-11-30T18:00:00Z) or milliseconds since the epoch",
            name,
        )
    if len(values) > 1:
        raise invalid(f"the query parameter {name} is given {len(values)} times", name)
    text = values[0].strip()
    if _MILLISECONDS.fullmatch(text):
        return int(text)
    try:
        when = datetime.fromisoformat(_SPACED_OFFSET.sub(r"+\1", text))
    except ValueError:
        raise invalid(
            f"the query parameter {name} ({text[:40]!r}) is neither an ISO 8601 date and time "
            "(e.g. 2026-11-30T18:00:00Z) nor milliseconds since the epoch",
            name,
        ) from None
    if when.tzinfo is None:
        raise invalid(
            f"the query parameter {name} ({text[:40]!r}) has no zone: add Z or an offset "
            "such as +01:00",
            name,
        )
    return round(when.timestamp() * 1000)


def stats_window(from_values: list[str], to_values: list[str]) -> tuple[int, int]:
    """[from, to) of a GET /v1/stats/calls query, checked (at most 31 days)."""
    return validate_window(
        parse_time(from_values, "from"), parse_time(to_values, "to"), "from", "to"
    )


def _name(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum.Name(value)).removeprefix(prefix).lower()
    except ValueError:
        return f"unknown_{value}"


def _iso(ms: int) -> str:
    text = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _percentiles(p: stats_pb2.Percentiles) -> dict[str, Any]:
    measured = p.samples > 0
    return {
        "samples": p.samples,
        "p50": p.p50 if measured else None,
        "p90": p.p90 if measured else None,
        "p99": p.p99 if measured else None,
    }


def aggregate_json(aggregate: stats_pb2.CallAggregate) -> dict[str, Any]:
    return {
        "application": aggregate.application_key,
        "from": _iso(aggregate.from_ms),
        "to": _iso(aggregate.to_ms),
        "reports": aggregate.reports,
        "calls": [
            {
                "kind": _name(calls_pb2.CallKind, c.kind, "CALL_KIND_"),
                "endCause": _name(calls_pb2.CallEndCause, c.end_cause, "CALL_END_CAUSE_"),
                "calls": c.calls,
            }
            for c in aggregate.counts
        ],
        "setupMs": _percentiles(aggregate.setup_ms),
        "mos": _percentiles(aggregate.mos),
    }
