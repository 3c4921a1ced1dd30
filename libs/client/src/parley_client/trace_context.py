"""W3C trace context (`traceparent`) for the frames the client sends; no OpenTelemetry here.

The client starts the trace of each call it places and of each message it sends: a new
trace id, and a span id that stands for the client's side of it. Every frame of that call
(or that message's sends) carries the traceparent in `Envelope.traceparent`, so a
deployment that exports traces records the call set-up, or the message, as one trace
across its services. An incoming call continues the trace its CallIncoming came in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_VERSION = "00"
_SAMPLED = "01"
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class TraceParent:
    """One span of a trace, as the `traceparent` header writes it:
    `00-<trace id: 32 hex digits>-<span id: 16 hex digits>-<flags: 2 hex digits>`."""

    trace_id: str
    span_id: str
    flags: str = _SAMPLED

    @classmethod
    def new(cls, trace_id: str = "") -> TraceParent:
        """A new span (a new span id) of the trace `trace_id`, or of a new trace."""
        if not _is_id(trace_id, 32):
            trace_id = _random_id(32)
        return cls(trace_id, _random_id(16))

    @classmethod
    def parse(cls, value: str) -> TraceParent | None:
        """The traceparent `value` (a received one), or None when it is not a valid one."""
        parts = value.split("-")
        if len(parts) < 4 or len(parts[0]) != 2 or not set(parts[0]) <= _HEX:
            return None
        version, trace_id, span_id, flags = parts[:4]
        if version == "ff" or (version == _VERSION and len(parts) != 4):
            return None  # ff is forbidden; version 00 has exactly four fields
        if not (_is_id(trace_id, 32) and _is_id(span_id, 16)):
            return None
        if len(flags) != 2 or not set(flags) <= _HEX:
            return None
        return cls(trace_id, span_id, flags)

    def __str__(self) -> str:
        return f"{_VERSION}-{self.trace_id}-{self.span_id}-{self.flags}"


def _is_id(value: str, digits: int) -> bool:
    """Lowercase hex of `digits` digits, not all zero (the all-zero id is invalid)."""
    return len(value) == digits and set(value) <= _HEX and value != "0" * digits


def _random_id(digits: int) -> str:
    """Random, not secret (as OpenTelemetry's id generator makes them): no system call per
    frame, as the OS's random source would cost."""
    while True:
        value = f"{random.getrandbits(digits * 4):0{digits}x}"
        if value != "0" * digits:
            return value
