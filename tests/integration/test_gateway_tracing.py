"""One trace from the caller through the gateway to auth: W3C trace context over HTTP,
client frames and NATS headers; and from a service through the gateway to a device."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import nats
import pytest_asyncio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from parley.v1 import echo_pb2
from parley_devstack.nats import EmbeddedNats
from parley_protocol import signatures
from parley_protocol.pb import client
from parley_service.devices import DeviceEvents
from tests.integration.gateway_stack import Stack, start_stack


@pytest_asyncio.fixture
async def stack(nats_server: EmbeddedNats, database_url: str) -> AsyncIterator[Stack]:
    running = await start_stack(nats_server.url, database_url)
    yield running
    await running.close()


def traceparent() -> tuple[str, int]:
    trace_id = secrets.randbits(128) | 1
    return f"00-{trace_id:032x}-{secrets.randbits(64) | 1:016x}-01", trace_id


async def test_registration_is_one_trace_from_http_through_auth(
    stack: Stack, span_exporter: InMemorySpanExporter
) -> None:
    app = await stack.create_app()
    header, trace_id = traceparent()
    body = {
        "application_key": app.key,
        "user_id": "traced",
        "scheme": "REGISTRATION_SCHEME_APPLICATION_SERVER",
        "signature": signatures.registration_signature("traced", app.key, 1, app.secret),
        "sequence": "1",
    }
    async with stack.http.post(
        stack.url() + "/v1/register", json=body, headers={"traceparent": header}
    ) as resp:
        assert resp.status == 200, await resp.text()
    in_trace = {
        s.name for s in span_exporter.get_finished_spans() if s.context.trace_id == trace_id
    }
    assert {"POST /v1/register", "parley.auth.register"} <= in_trace


async def test_a_frame_with_a_traceparent_is_traced(
    stack: Stack, span_exporter: InMemorySpanExporter
) -> None:
    app = await stack.create_app()
    raw = await stack.signed_in(app, "framed")
    header, trace_id = traceparent()
    await raw.send(ping=client.Ping(client_time_ms=1), traceparent=header)
    assert (await raw.recv()).WhichOneof("body") == "pong"
    in_trace = [
        s.name for s in span_exporter.get_finished_spans() if s.context.trace_id == trace_id
    ]
    assert in_trace == ["frame ping"]
    await raw.close()


async def test_an_event_reaches_the_device_in_the_trace_it_was_sent_in(
    stack: Stack, span_exporter: InMemorySpanExporter
) -> None:
    app = await stack.create_app()
    raw = await stack.signed_in(app, "evented")
    bus = await nats.connect(stack.nats_url)
    try:
        events = DeviceEvents(bus)
        with trace.get_tracer("test").start_as_current_span("a service's work") as span:
            await events.to_user(app.key, "evented", echo_pb2.EchoEvent(text="traced"))
        frame = await raw.recv()
        assert frame.echo_event.text == "traced"
        context = span.get_span_context()
        flags = f"{context.trace_flags:02x}"  # sampled (and "random", from this SDK)
        assert frame.traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags}"

        # A trace nobody records is not passed on (its bytes would be for nothing).
        unsampled = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0))
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(unsampled)))
        try:
            await events.to_user(app.key, "evented", echo_pb2.EchoEvent(text="untraced"))
        finally:
            otel_context.detach(token)
        frame = await raw.recv()
        assert frame.echo_event.text == "untraced" and frame.traceparent == ""
    finally:
        await bus.close()
        await raw.close()
