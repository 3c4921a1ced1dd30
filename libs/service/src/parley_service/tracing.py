"""OpenTelemetry tracing, with W3C trace context carried in NATS headers and client frames."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()


def configure_tracing(
    service: str, instance_id: str, exporter: str = "", extra: SpanExporter | None = None
) -> TracerProvider:
    """Install a tracer provider for this process; `exporter="console"` prints spans.

    With nothing to export spans to, none is recorded (recording them costs a busy service
    a tenth of its CPU for nothing); trace context still flows: each span carries its
    caller's trace id on to what it calls."""
    exporting = exporter == "console" or extra is not None
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.instance.id": instance_id}),
        sampler=ALWAYS_ON if exporting else ALWAYS_OFF,
    )
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    if extra is not None:
        provider.add_span_processor(SimpleSpanProcessor(extra))
    trace.set_tracer_provider(provider)
    return provider


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current span's `traceparent` (and `tracestate`) to headers."""
    _propagator.inject(headers)
    return headers


def extract(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The context a remote caller sent, to parent a server span on."""
    return _propagator.extract(dict(headers or {}))


def context_from_traceparent(traceparent: str) -> otel_context.Context:
    return extract({"traceparent": traceparent} if traceparent else {})


def current_traceparent() -> str:
    headers: dict[str, str] = {}
    _propagator.inject(headers)
    return headers.get("traceparent", "")


@contextmanager
def server_span(
    tracer_name: str, name: str, carrier: Mapping[str, str] | None = None
) -> Iterator[trace.Span]:
    """A SERVER span continuing the trace a caller sent (HTTP headers, NATS headers, or
    {"traceparent": ...} from a client frame), current while the block runs."""
    with trace.get_tracer(tracer_name).start_as_current_span(
        name, context=extract(carrier), kind=trace.SpanKind.SERVER
    ) as span:
        yield span
