"""Tracing end to end: every service, a process, exports its spans over OTLP/HTTP to a
collector (PARLEY_OTLP_ENDPOINT); a call set-up between two reference clients, and a
message, are each one trace across the services, the client's own span at its root."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
import pytest_asyncio

from parley_client import WritableMessage
from parley_client.trace_context import TraceParent
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_protocol.pb import echo
from tests.support.calls import established_call
from tests.support.messaging import listen
from tests.support.otlp_collector import CollectedSpan, OtlpCollector
from tests.support.wire import RawClient, bounded, eventually

from .stack import (
    ECHO,
    E2EStack,
    calling_party,
    make_client,
    messaging_def,
    push_def,
    running_stack,
)

# Spans reach the collector within this long (batches go every 200 ms here).
SPANS_SECONDS = 20
# The echo service holds its spans for ten minutes: only its stop sends them in time.
HOLDING = dataclasses.replace(ECHO, env={"OTEL_BSP_SCHEDULE_DELAY": "600000"})
_numbers = itertools.count()


def user(name: str) -> str:
    """A fresh user: nothing about it is cached by a service yet (auth is asked)."""
    return f"{name} {next(_numbers)}"


@pytest_asyncio.fixture(scope="module")
async def collector() -> AsyncIterator[OtlpCollector]:
    running = await OtlpCollector().start()
    try:
        yield running
    finally:
        await running.stop()


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: EmbeddedNats,
    postgres_server: EmbeddedPostgres,
    collector: OtlpCollector,
) -> AsyncIterator[E2EStack]:
    env = {"PARLEY_OTLP_ENDPOINT": collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    async with running_stack(
        tmp_path_factory.mktemp("tracing"),
        nats_server.url,
        postgres_server,
        extra=[messaging_def(), push_def(), HOLDING],
        env=env,
    ) as running:
        yield running


def service(span: CollectedSpan) -> str:
    """The service a span is of (gateway-a and gateway-b are both gateways)."""
    return span.service.split("-")[0]


def missing_parents(spans: Iterable[CollectedSpan]) -> set[str]:
    """Parent span ids of spans that are not among them: the trace's roots' parents."""
    spans = list(spans)
    ids = {span.span_id for span in spans}
    return {s.parent_span_id for s in spans if s.parent_span_id not in ids}


def children(span: CollectedSpan, spans: Iterable[CollectedSpan]) -> list[CollectedSpan]:
    return [s for s in spans if s.parent_span_id == span.span_id]


def named(spans: Iterable[CollectedSpan], name: str) -> list[CollectedSpan]:
    return [span for span in spans if span.name == name]


@bounded(60)
async def test_a_call_set_up_is_one_trace_across_the_services(
    stack: E2EStack, collector: OtlpCollector, tmp_path: Path
) -> None:
    alice = await calling_party(stack, user("alice"), tmp_path / "a", ["gateway-a"], media=False)
    bob = await calling_party(stack, user("bob"), tmp_path / "b", ["gateway-b"], media=False)
    try:
        call, incoming = await established_call(alice, bob)
        assert incoming.trace_id == call.trace_id  # the callee continued the caller's trace
        await call.hangup()
        await incoming.wait_ended(5)
        client_span = call.traceparent.split("-")[2]  # the caller's own: never exported
        frames = {f"frame {b}" for b in ("start_call", "ring_call", "answer_call", "hangup_call")}

        async def whole() -> bool:
            spans = collector.of_trace(call.trace_id)
            return frames <= {s.name for s in spans} and missing_parents(spans) == {client_span}

        await eventually(whole, SPANS_SECONDS, "the call's spans, forming one tree")
        assert collector.refused == []
        spans = collector.of_trace(call.trace_id)
        assert {"gateway", "auth", "calls"} <= {service(s) for s in spans}
        # One tree: every span's parent is in the trace but for the caller's span at its root,
        # the parent of the gateway's spans of the caller's frames.
        roots = [s for s in spans if s.parent_span_id == client_span]
        assert {s.name for s in roots} == {"frame start_call", "frame hangup_call"}
        assert all(service(s) == "gateway" for s in roots)
        # The call's set-up, service by service.
        [start] = named(spans, "frame start_call")
        [started] = children(start, spans)
        assert service(started) == "calls"
        lookups = [s for s in spans if service(s) == "auth"]
        assert lookups and all(s in children(started, spans) for s in lookups)
        # The callee's frames continue the span of the calls service that offered it the call.
        for name in ("frame ring_call", "frame answer_call"):
            [frame] = named(spans, name)
            assert frame in children(started, spans), name
    finally:
        await alice.client.terminate()
        await bob.client.terminate()


@bounded(60)
async def test_a_message_to_an_offline_recipient_is_one_trace_through_messaging_and_push(
    stack: E2EStack, collector: OtlpCollector, tmp_path: Path
) -> None:
    sender_id, recipient_id = user("sam"), user("rita")
    status, _ = await stack.register(recipient_id)  # a device once; never online
    assert status == 200
    sender = make_client(stack, sender_id, tmp_path / "sam")
    inbox = listen(sender)
    await sender.start()
    try:
        message = sender.message_client.send(WritableMessage(recipient_id, "traced"))
        await inbox.wait("sent", 1)
        other = sender.message_client.send(WritableMessage(recipient_id, "another"))
        await inbox.wait("sent", 2)
        assert len(message.trace_id) == 32 and other.trace_id != message.trace_id

        async def whole() -> bool:
            spans = collector.of_trace(message.trace_id)
            services = {service(s) for s in spans}
            return {"gateway", "messaging", "push"} <= services and len(missing_parents(spans)) == 1

        await eventually(whole, SPANS_SECONDS, "the message's spans, forming one tree")
        assert collector.refused == []
        spans = collector.of_trace(message.trace_id)
        assert {"gateway", "auth", "messaging", "push"} <= {service(s) for s in spans}
        # Its root: the gateway's span of the SendMessage frame, under the sender's span.
        [parent] = missing_parents(spans)
        [root] = [s for s in spans if s.parent_span_id == parent]
        assert (root.name, service(root)) == ("frame send_message", "gateway")
        [handled] = children(root, spans)
        assert service(handled) == "messaging"
        # Push's span of the Notify request is messaging's child; push's own spans (its
        # batched device lookup) are under it.
        [notify] = [s for s in children(handled, spans) if service(s) == "push"]
        assert notify.name == "parley.push.notify"
        pushed = [s for s in spans if service(s) == "push" and s is not notify]
        assert pushed and all(s in children(notify, spans) for s in pushed)
        assert named(pushed, "batch devices") != []
        assert any(s.name == "batch messages" for s in children(handled, spans))

        # The other message is a trace of its own.
        async def other_traced() -> bool:
            return named(collector.of_trace(other.trace_id), "frame send_message") != []

        await eventually(other_traced, SPANS_SECONDS, "the other message's spans")
        assert len(named(collector.of_trace(message.trace_id), "frame send_message")) == 1
    finally:
        await sender.terminate()


@bounded(60)
async def test_a_stopping_service_sends_the_spans_it_still_holds(
    stack: E2EStack, collector: OtlpCollector
) -> None:
    user_id = user("echoer")
    raw = await RawClient.open(stack.ws("gateway-a"))
    try:
        await raw.hello(await stack.access_token(user_id), stack.app_key, user_id)
        trace = TraceParent.new()
        reply = await raw.request(echo_request=echo.EchoRequest(text="hi"), traceparent=str(trace))
        assert reply.echo_reply.text == "hi"

        async def gateway_span() -> bool:
            return named(collector.of_trace(trace.trace_id), "frame echo_request") != []

        await eventually(gateway_span, SPANS_SECONDS, "the gateway's span")
        assert [s for s in collector.of_trace(trace.trace_id) if s.service == "echo"] == []
        await stack.devstack.supervisor.stop("echo")  # SIGTERM: a drain, then the flush
        [echoed] = [s for s in collector.of_trace(trace.trace_id) if s.service == "echo"]
        [frame] = named(collector.of_trace(trace.trace_id), "frame echo_request")
        assert echoed.parent_span_id == frame.span_id
    finally:
        await raw.close()
