"""Tracing settings and the sampler: every service keeps or drops the same traces."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from parley_service import tracing
from parley_service.settings import ServiceSettings, SettingsError

LOW = 0x0123_4567_89AB_CDEF_0000_0000_0000_0001  # low 64 bits: near 0 (kept at ratio 0.5)
HIGH = 0x0123_4567_89AB_CDEF_F000_0000_0000_0001  # low 64 bits: near 2^64 (dropped at 0.5)


def test_tracing_settings_come_from_the_environment() -> None:
    s = ServiceSettings.from_env(
        {"PARLEY_OTLP_ENDPOINT": "http://collector:4318", "PARLEY_TRACE_SAMPLE_RATIO": "0.25"}
    )
    assert (s.otlp_endpoint, s.trace_sample_ratio) == ("http://collector:4318", 0.25)
    defaults = ServiceSettings()
    assert (defaults.otlp_endpoint, defaults.trace_sample_ratio) == ("", 1.0)
    assert tracing.otlp_traces_url("https://otel.example:4318/") == (
        "https://otel.example:4318/v1/traces"
    )
    assert tracing.otlp_traces_url("http://c:4318/prefix") == "http://c:4318/prefix/v1/traces"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PARLEY_OTLP_ENDPOINT": "collector:4318"}, "PARLEY_OTLP_ENDPOINT must be an http"),
        ({"PARLEY_OTLP_ENDPOINT": "grpc://collector:4317"}, "PARLEY_OTLP_ENDPOINT"),
        ({"PARLEY_OTLP_ENDPOINT": "http://"}, "PARLEY_OTLP_ENDPOINT"),
        ({"PARLEY_OTLP_ENDPOINT": "http://c:4318/?x=1"}, "PARLEY_OTLP_ENDPOINT"),
        ({"PARLEY_TRACE_SAMPLE_RATIO": "1.5"}, "PARLEY_TRACE_SAMPLE_RATIO must be 0 to 1"),
        ({"PARLEY_TRACE_SAMPLE_RATIO": "-0.1"}, "PARLEY_TRACE_SAMPLE_RATIO"),
        ({"PARLEY_TRACE_SAMPLE_RATIO": "nan"}, "PARLEY_TRACE_SAMPLE_RATIO"),
        ({"PARLEY_TRACE_SAMPLE_RATIO": "half"}, "PARLEY_TRACE_SAMPLE_RATIO"),
        ({"PARLEY_OTEL_EXPORTER": "jaeger"}, "PARLEY_OTEL_EXPORTER must be empty or console"),
    ],
)
def test_bad_tracing_settings_are_refused_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        ServiceSettings.from_env(env)


def _remote(trace_id: int, sampled: bool) -> Context:
    parent = SpanContext(
        trace_id, 0x00F0_67AA_0BA9_02B7, is_remote=True, trace_flags=TraceFlags(int(sampled))
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _decision(ratio: float, trace_id: int, parent: Context | None = None) -> Decision:
    return tracing.sampler(ratio).should_sample(parent, trace_id, "span").decision


def test_the_trace_id_alone_decides_whatever_a_caller_says() -> None:
    kept, dropped = Decision.RECORD_AND_SAMPLE, Decision.DROP
    for sampled in (True, False):  # a client's flag changes nothing
        assert _decision(1.0, HIGH, _remote(HIGH, sampled)) == kept
        assert _decision(0.0, LOW, _remote(LOW, sampled)) == dropped
        assert _decision(0.5, LOW, _remote(LOW, sampled)) == kept
        assert _decision(0.5, HIGH, _remote(HIGH, sampled)) == dropped
    # A trace started here: the same answer, so every service agrees.
    assert (_decision(0.5, LOW), _decision(0.5, HIGH)) == (kept, dropped)


def test_a_span_of_a_local_parent_follows_it() -> None:
    local = SpanContext(LOW, 0x1, is_remote=False, trace_flags=TraceFlags(0))
    context = trace.set_span_in_context(NonRecordingSpan(local))
    assert _decision(1.0, LOW, context) == Decision.DROP


def test_without_an_exporter_no_span_is_made_and_the_callers_trace_flows_unsampled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "_making_spans", False)
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    caller = {"traceparent": f"00-{trace_id}-{span_id}-01"}
    with tracing.server_span("parley.test", "parley.test.subject", caller) as span:
        assert not span.is_recording()
        # What this request calls carries the caller's trace, not sampled (nothing records).
        assert tracing.current_traceparent() == f"00-{trace_id}-{span_id}-00"
        with tracing.child_span("parley.test", "batch test") as step:
            assert step is trace.INVALID_SPAN
            assert tracing.current_traceparent() == f"00-{trace_id}-{span_id}-00"
    assert tracing.current_traceparent() == ""  # the caller's context is gone again
    with tracing.consumer_span("parley.test", "jobs", {}) as span:
        assert span is trace.INVALID_SPAN and tracing.current_traceparent() == ""
    unsampled = {"traceparent": f"00-{trace_id}-{span_id}-00"}
    with tracing.server_span("parley.test", "s", unsampled):
        assert tracing.current_traceparent() == unsampled["traceparent"]
