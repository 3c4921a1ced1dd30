"""OpenTelemetry tracing, with W3C trace context carried in NATS headers and client frames.

One call set-up, and one message, is one trace across the services: the reference client
starts it (`Envelope.traceparent` on its frames), the gateway continues it, every bus
request and device event carries it in its `traceparent` header, and the gateway puts it
on the events it delivers, so the far side's client continues it too.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()

# The OTLP/HTTP path of traces under a collector's endpoint.
OTLP_TRACES_PATH = "/v1/traces"

# Whether spans are made: False once configure_tracing found nothing to export them to.
# (True until then: a provider set up otherwise, as tests do, gets every span.)
_making_spans = True


def making_spans() -> bool:
    return _making_spans


def configure_tracing(
    service: str,
    instance_id: str,
    exporter: str = "",
    extra: SpanExporter | None = None,
    otlp_endpoint: str = "",
    sample_ratio: float = 1.0,
) -> TracerProvider:
    """Install a tracer provider for this process: `exporter="console"` prints spans,
    `otlp_endpoint` (a collector's base URL) exports them over OTLP/HTTP in batches.

    With nothing to export spans to, no span is made at all (making even unrecorded ones
    cost a busy service a tenth of its CPU for nothing); trace context still flows: a
    request's work runs in its caller's context, so what it calls carries the caller's
    trace on. Call `shutdown()` on the provider at exit: it sends the spans still batched."""
    global _making_spans
    exporting = exporter == "console" or extra is not None or bool(otlp_endpoint)
    _making_spans = exporting
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.instance.id": instance_id}),
        sampler=sampler(sample_ratio) if exporting else ALWAYS_OFF,
    )
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    if extra is not None:
        provider.add_span_processor(SimpleSpanProcessor(extra))
    if otlp_endpoint:
        # Imported only here: a service that does not export does not load it.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        otlp = OTLPSpanExporter(endpoint=otlp_traces_url(otlp_endpoint))
        provider.add_span_processor(BatchSpanProcessor(otlp))
    trace.set_tracer_provider(provider)
    return provider


def sampler(ratio: float) -> Sampler:
    """Keep `ratio` of the traces, decided from the trace id alone: every service of a
    deployment keeps the same ones, whatever a caller's sampled flag says (a client cannot
    make the deployment record more than its ratio). A span of a local parent follows it."""
    by_trace_id = TraceIdRatioBased(ratio)
    return ParentBased(
        root=by_trace_id,
        remote_parent_sampled=by_trace_id,
        remote_parent_not_sampled=by_trace_id,
    )


def otlp_traces_url(endpoint: str) -> str:
    """The traces URL of a collector's OTLP/HTTP endpoint (`http://collector:4318`)."""
    return endpoint.rstrip("/") + OTLP_TRACES_PATH


@functools.cache
def tracer(name: str) -> trace.Tracer:
    """The tracer named `name`, got once: the SDK's get_tracer adds a warnings filter on
    every call (which also empties the warnings caches) before it looks up its tracer, and
    server spans are made per request. Until a provider is set this is OpenTelemetry's
    proxy tracer, which follows the provider once there is one."""
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


def server_span(
    tracer_name: str, name: str, carrier: Mapping[str, str] | None = None
) -> AbstractContextManager[trace.Span]:
    """A SERVER span continuing the trace a caller sent (HTTP headers, NATS headers, or
    {"traceparent": ...} from a client frame), current while the block runs."""
    return _continuing(tracer_name, name, carrier, trace.SpanKind.SERVER)


def frame_span(tracer_name: str, name: str, traceparent: str) -> AbstractContextManager[trace.Span]:
    """The SERVER span of a client frame that carries a `traceparent` (its client asked for
    it to be traced); without one a no-op span, and nothing is recorded."""
    if not traceparent:
        return nullcontext(trace.INVALID_SPAN)
    return server_span(tracer_name, name, {"traceparent": traceparent})


def consumer_span(
    tracer_name: str, name: str, carrier: Mapping[str, str] | None = None
) -> AbstractContextManager[trace.Span]:
    """A CONSUMER span continuing the trace a message was published in (its NATS headers:
    a job taken from a stream, an event heard on a subject), current while the block runs."""
    return _continuing(tracer_name, name, carrier, trace.SpanKind.CONSUMER)


@contextmanager
def _continuing(
    tracer_name: str, name: str, carrier: Mapping[str, str] | None, kind: trace.SpanKind
) -> Iterator[trace.Span]:
    if not _making_spans:  # no span: the caller's context, so its trace flows on
        if not carrier or "traceparent" not in carrier:
            yield trace.INVALID_SPAN
            return
        token = otel_context.attach(_unsampled(extract(carrier)))
        try:
            yield trace.INVALID_SPAN
        finally:
            otel_context.detach(token)
        return
    with tracer(tracer_name).start_as_current_span(
        name, context=extract(carrier), kind=kind
    ) as span:
        yield span


def _unsampled(context: otel_context.Context) -> otel_context.Context:
    """The caller's trace, marked not sampled as a span of this service would be (nothing
    here records it, so the gateway need not put it on the frames it delivers)."""
    caller = trace.get_current_span(context).get_span_context()
    if not caller.is_valid or not caller.trace_flags.sampled:
        return context
    return trace.set_span_in_context(
        trace.NonRecordingSpan(
            trace.SpanContext(
                caller.trace_id,
                caller.span_id,
                is_remote=True,
                trace_flags=trace.TraceFlags(trace.TraceFlags.DEFAULT),
                trace_state=caller.trace_state,
            )
        ),
        context,
    )


def child_span(tracer_name: str, name: str) -> AbstractContextManager[trace.Span]:
    """A span of the current one (a step of the work, e.g. a wait for a batch); when no
    span is made, nothing."""
    if not _making_spans:
        return nullcontext(trace.INVALID_SPAN)
    return tracer(tracer_name).start_as_current_span(name)
