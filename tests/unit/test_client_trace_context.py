"""The client's W3C traceparent: new traces and spans, and what a received one may be."""

from __future__ import annotations

import re

import pytest

from parley_client.trace_context import TraceParent

TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_a_new_traceparent_starts_a_sampled_trace_with_random_ids() -> None:
    first, second = TraceParent.new(), TraceParent.new()
    assert TRACEPARENT.fullmatch(str(first)), str(first)
    assert first.trace_id != second.trace_id and first.span_id != second.span_id
    assert str(first) == f"00-{first.trace_id}-{first.span_id}-01"


def test_a_new_span_of_a_given_trace_keeps_the_trace_and_takes_a_new_span_id() -> None:
    spans = [TraceParent.new(TRACE) for _ in range(3)]
    assert {span.trace_id for span in spans} == {TRACE}
    assert len({span.span_id for span in spans}) == 3
    # No trace (a message from an older outbox) or an invalid one: a new trace.
    for given in ("", "0" * 32, TRACE.upper(), TRACE[:-1]):
        made = TraceParent.new(given)
        assert made.trace_id not in (given, TRACE) and TRACEPARENT.fullmatch(str(made))


def test_a_received_traceparent_is_read_back() -> None:
    parsed = TraceParent.parse(f"00-{TRACE}-{SPAN}-01")
    assert parsed == TraceParent(TRACE, SPAN, "01")
    assert str(parsed) == f"00-{TRACE}-{SPAN}-01"
    assert TraceParent.parse(f"00-{TRACE}-{SPAN}-00") == TraceParent(TRACE, SPAN, "00")
    # A later version: its first four fields, what follows them ignored (W3C).
    later = TraceParent.parse(f"01-{TRACE}-{SPAN}-01-what-comes-later")
    assert later == TraceParent(TRACE, SPAN, "01")
    assert str(later) == f"00-{TRACE}-{SPAN}-01"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"00-{TRACE}-{SPAN}",  # no flags
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
        f"0x-{TRACE}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"00-{TRACE.upper()}-{SPAN}-01",  # upper case
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}1-01",
        f"00-{TRACE}-{SPAN}-1",
        f"00-{TRACE}-{SPAN}-zz",
    ],
)
def test_an_invalid_traceparent_is_not_taken(value: str) -> None:
    assert TraceParent.parse(value) is None
