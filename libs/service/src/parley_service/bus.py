"""Request/reply over NATS with typed protobuf messages and typed errors.

A reply carries the response message; an error reply carries a `parley.v1.Error` with the
`Parley-Error` header set. Trace context travels in the `traceparent` header. Endpoints are
declared with `Bus.endpoint` (`Bus.client_endpoint` for routed client bodies) and served in a
queue group so replicas share the load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import nats.errors
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter, Histogram

from parley.v1 import common_pb2, routing_pb2
from parley_protocol import bodies
from parley_protocol.errors import ERROR_HEADER, ErrorCode, ParleyError
from parley_service import db, tracing
from parley_service.client_requests import ClientHandler, client_request_handler
from parley_service.logs import get_logger
from parley_service.metric_children import Children
from parley_service.replies import ReplyInbox, no_responders

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

log = get_logger("parley.bus")

# How long stop_serving waits for NATS to confirm its subscriptions are drained.
SUB_DRAIN_SECONDS = 2.0
# Of a replica's most concurrent requests, the share that requests starting new work may
# take (the rest is kept for requests that finish accepted work).
SHEDS_FIRST_SHARE = 0.75

BUS_REQUESTS = Counter(
    "parley_bus_requests_total",
    "Bus requests served, by endpoint and outcome (ok or an error code name).",
    ["service", "subject", "outcome"],
)
BUS_SHED = Counter(
    "parley_bus_requests_shed_total",
    "Bus requests answered UNAVAILABLE at once because the replica was serving its most.",
    ["service", "subject"],
)
BUS_SECONDS = Histogram(
    "parley_bus_request_seconds",
    "Time to serve a bus request.",
    ["service", "subject"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
_REQUESTS, _SECONDS = Children(BUS_REQUESTS), Children(BUS_SECONDS)  # (the hot path)


class Unreachable(ParleyError):
    """A request that reached no one, or whose bus failed (UNAVAILABLE): not an error the
    service answered with, which comes back as a plain ParleyError."""


@dataclass
class Endpoint(Generic[Req, Resp]):
    subject: str
    request_type: type[Req]
    handler: Callable[[Req], Awaitable[Resp]]
    queue: str
    # Its requests start new work (a message to store, a call to set up): under overload
    # they are shed first (see Bus).
    sheds_first: bool = False


class InFlight:
    """Counts work under way so a draining service can wait for it."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __enter__(self) -> None:
        self._count += 1
        self._idle.clear()

    def __exit__(self, *exc: object) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False


class Bus:
    def __init__(
        self,
        nc: NATS,
        service: str,
        in_flight: InFlight | None = None,
        max_concurrent: int | None = None,
    ) -> None:
        """`max_concurrent`: requests served at once; more are shed (answered UNAVAILABLE
        at once); None: no limit. Requests of endpoints declared `sheds_first` (they start
        new work) are shed from SHEDS_FIRST_SHARE of that on: the rest is kept for requests
        that finish work already accepted (acknowledgements, fetches), so that under
        overload what was accepted still completes instead of being retried and told
        again."""
        self.nc = nc
        self.service = service
        self.in_flight = in_flight or InFlight()
        self.max_concurrent = max_concurrent
        self.max_new_work = (
            None if max_concurrent is None else max(1, int(max_concurrent * SHEDS_FIRST_SHARE))
        )
        self._endpoints: list[Endpoint[Any, Any]] = []
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._tracer_name = f"parley.{service}"

    def endpoint(
        self,
        subject: str,
        request_type: type[Req],
        handler: Callable[[Req], Awaitable[Resp]],
        queue: str,
        *,
        sheds_first: bool = False,
    ) -> None:
        """Declare a request/reply endpoint; served once `serve()` is called.
        `sheds_first`: its requests start new work, and are shed first under overload."""
        self._endpoints.append(Endpoint(subject, request_type, handler, queue, sheds_first))

    def client_endpoint(
        self, request_type: type[Req], handler: ClientHandler[Req], *, sheds_first: bool = False
    ) -> None:
        """Declare the handler of a routed client body: `handler(caller, body)` returns the
        REPLY body. Subject and queue group come from the body's `(route)` in the protos."""
        route = bodies.route_of(request_type)
        wrapped = client_request_handler(route, request_type, handler)
        self.endpoint(
            route.subject, routing_pb2.ClientRequest, wrapped, route.queue, sheds_first=sheds_first
        )

    async def serve(self) -> None:
        """Subscribe every endpoint; on return the server has them (a round trip after the
        subscriptions), so a request sent once the service says it started finds them."""
        for ep in self._endpoints:
            self._subs.append(await self.nc.subscribe(ep.subject, queue=ep.queue, cb=self._cb(ep)))
        if self._subs:
            await flush_queued(self.nc)

    async def stop_serving(self) -> None:
        """Stop taking new requests (requests already taken still finish).

        Each subscription is drained, not just unsubscribed: the server may have sent
        requests before it heard the unsubscribe, and an unsubscribed connection drops
        them (their callers would wait out their timeouts; a sip replica that became full
        lost dials that way). Draining answers them. When NATS cannot confirm within
        SUB_DRAIN_SECONDS (it is away), the subscriptions are simply dropped.
        """
        subs, self._subs = self._subs, []
        if not subs:
            return
        try:
            # A round trip first: the requests the server already routed here are read
            # before the subscriptions go (draining alone lost some of them now and then:
            # seen in tests/integration/test_bus_stop_serving.py).
            await asyncio.wait_for(flush_queued(self.nc), SUB_DRAIN_SECONDS)
            await asyncio.wait_for(
                asyncio.gather(*(sub.drain() for sub in subs)),  # type: ignore[no-untyped-call]
                SUB_DRAIN_SECONDS,
            )
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("bus_drain_failed", service=self.service, error=repr(exc))
            for sub in subs:
                _drop(self.nc, sub)

    async def cancel_in_flight(self) -> None:
        """Stop at once: cancel the requests being served (their callers time out)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _cb(self, ep: Endpoint[Req, Resp]) -> Callable[[Msg], Awaitable[None]]:
        # Each request runs in its own task: requests are served concurrently, and
        # unsubscribing (which cancels the subscription's task) never cancels one mid-way.
        limit = self.max_new_work if ep.sheds_first else self.max_concurrent

        async def on_request(msg: Msg) -> None:
            if limit is not None and len(self._tasks) >= limit:
                await self._shed(ep, msg)
                return
            self.in_flight.__enter__()
            task = asyncio.create_task(self._handle(ep, msg))
            self._tasks.add(task)
            task.add_done_callback(self._done)

        return on_request

    async def _shed(self, ep: Endpoint[Any, Any], msg: Msg) -> None:
        BUS_SHED.labels(self.service, ep.subject).inc()
        BUS_REQUESTS.labels(self.service, ep.subject, "shed").inc()
        if not msg.reply:
            return
        busy = ParleyError(
            ErrorCode.ERROR_CODE_UNAVAILABLE,
            f"the {self.service} service is busy ({len(self._tasks)} requests under way); "
            "retry shortly",
        )
        try:
            await self.nc.publish(
                msg.reply,
                busy.to_proto().SerializeToString(),
                headers={ERROR_HEADER: busy.code_name},
            )
        except nats.errors.Error as exc:
            log.warning("bus_reply_failed", subject=ep.subject, error=str(exc))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.in_flight.__exit__()

    async def _handle(self, ep: Endpoint[Req, Resp], msg: Msg) -> None:
        started = time.perf_counter()
        outcome = "ok"
        with tracing.server_span(self._tracer_name, ep.subject, msg.headers) as span:
            try:
                request = parse(
                    ep.request_type,
                    msg.data,
                    ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                    f"request is not a {ep.request_type.DESCRIPTOR.full_name}",
                )
                response = await ep.handler(request)
                payload, headers = response.SerializeToString(), None
            except ParleyError as err:
                outcome = err.code_name
                span.set_attribute("parley.error", outcome)
                payload, headers = err.to_proto().SerializeToString(), {ERROR_HEADER: outcome}
            except Exception as exc:
                if db.is_unavailable(exc):
                    failure = ParleyError(
                        ErrorCode.ERROR_CODE_UNAVAILABLE, "the database is not available; retry"
                    )
                    log.warning("bus_handler_unavailable", subject=ep.subject, error=repr(exc))
                else:
                    failure = ParleyError(ErrorCode.ERROR_CODE_INTERNAL, "internal error")
                    log.exception("bus_handler_failed", subject=ep.subject)
                outcome = failure.code_name
                span.set_attribute("parley.error", outcome)
                payload = failure.to_proto().SerializeToString()
                headers = {ERROR_HEADER: outcome}
        _REQUESTS(self.service, ep.subject, outcome).inc()
        _SECONDS(self.service, ep.subject).observe(time.perf_counter() - started)
        if msg.reply:
            try:
                await self.nc.publish(msg.reply, payload, headers=headers)
            except nats.errors.Error as exc:
                log.warning("bus_reply_failed", subject=ep.subject, error=str(exc))

    async def request(
        self, subject: str, message: Message, response_type: type[Resp], timeout: float = 5.0
    ) -> Resp:
        """Send a request and return the typed reply, or raise the typed error it carried."""
        return await request(self.nc, subject, message, response_type, timeout)


async def request(
    nc: NATS, subject: str, message: Message, response_type: type[Resp], timeout: float = 5.0
) -> Resp:
    """Send a request and return the typed reply, or raise the typed error it carried
    (Unreachable when no one listens or the bus is away, TIMEOUT when no reply came). Its
    reply comes to the connection's `ReplyInbox`."""
    headers = tracing.inject({}) or None
    try:
        inbox = await ReplyInbox.of(nc)
        reply_to, answer = inbox.one(timeout, _answered(subject))
    except nats.errors.Error as exc:  # the inbox could not be subscribed
        raise Unreachable(
            ErrorCode.ERROR_CODE_UNAVAILABLE, f"bus unavailable: {type(exc).__name__}"
        ) from exc
    try:
        await nc.publish(subject, message.SerializeToString(), reply=reply_to, headers=headers)
        reply = await answer
    except nats.errors.TimeoutError as exc:
        raise ParleyError(
            ErrorCode.ERROR_CODE_TIMEOUT, f"{subject} did not answer within {timeout:g} s"
        ) from exc
    except nats.errors.Error as exc:  # closed, draining, buffer full, ...
        raise Unreachable(
            ErrorCode.ERROR_CODE_UNAVAILABLE, f"bus unavailable: {type(exc).__name__}"
        ) from exc
    finally:
        inbox.forget(reply_to)  # a no-op once answered
    if reply.headers and ERROR_HEADER in reply.headers:
        err = parse(
            common_pb2.Error,
            reply.data,
            ErrorCode.ERROR_CODE_INTERNAL,
            f"{subject} sent an unreadable error",
        )
        raise ParleyError.from_proto(err)
    return parse(
        response_type,
        reply.data,
        ErrorCode.ERROR_CODE_INTERNAL,
        f"{subject} answered with something that is not a {response_type.DESCRIPTOR.full_name}",
    )


def _answered(subject: str) -> Callable[[Msg], Msg]:
    """The reply of a request to `subject`, unless the server says no one listens there."""

    def read(msg: Msg) -> Msg:
        if no_responders(msg):
            raise Unreachable(ErrorCode.ERROR_CODE_UNAVAILABLE, f"no service answers {subject}")
        return msg

    return read


async def flush_queued(nc: NATS, timeout: int = 10) -> None:
    """`nc.flush()`, answered only once the commands queued before it reached the server.

    nats-py writes flush's PING straight to the socket, ahead of the commands still queued
    for its flusher task (a SUB just made): the server could answer before it had the SUB,
    and a request sent at once from another connection found no responder (seen in a test
    under load). One turn of the event loop first did not always let the flusher write
    them (a test saw requests sent right after `Bus.serve` answered "no responders"), so
    this waits for the flusher's pass over what is queued now (nats-py internals, as in
    `_drop`; the version is pinned)."""
    await asyncio.wait_for(nc._flush_pending(force_flush=True), timeout)
    await nc.flush(timeout)


def _drop(nc: NATS, sub: Subscription) -> None:
    """Forget a subscription whose drain did not finish (nats-py marks it closed but keeps
    it, and would subscribe it again after a reconnect): stop its task, remove it from the
    connection. nats-py internals, as in the gateway's SubjectMux (version pinned)."""
    sub._stop_processing()
    nc._remove_sub(sub._id)


M = TypeVar("M", bound=Message)


def parse(message_type: type[M], data: bytes, code: int, reason: str) -> M:
    """Decode `data` as `message_type`, or raise ParleyError(code, reason)."""
    message = message_type()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise ParleyError(code, reason) from exc
    return message
