"""Routed client bodies, forwarded to the services that answer them.

A client body whose message declares a `(route)` (see `parley_protocol.bodies`) goes to its
service as a `parley.v1.ClientRequest` carrying the caller as this gateway verified it; the
service's reply (one REPLY body, or a typed error) goes back with `reply_to` set. The
gateway never learns a domain: a new capability needs no change here.

Each request runs in a task of its own, so a slow service never holds up the session's
other frames; a session may have `max_requests_in_flight` of them at once.
"""

from __future__ import annotations

import asyncio
import time

from parley.v1 import client_pb2, routing_pb2
from parley_gateway.metrics import ROUTED, ROUTED_SECONDS
from parley_gateway.session import Session
from parley_protocol import bodies, framing
from parley_protocol.bodies import Route
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import tasks, tracing
from parley_service.bus import Bus, Unreachable
from parley_service.logs import get_logger

log = get_logger("parley.gateway.forward")


class Forwarder:
    def __init__(self, bus: Bus, gateway_id: str, max_in_flight: int) -> None:
        self._bus = bus
        self._gateway_id = gateway_id
        self._max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def forward(self, session: Session, envelope: client_pb2.Envelope, route: Route) -> None:
        """Check the request and start forwarding it; returns without waiting for the reply."""
        if not bodies.has_capability(session.capabilities, route.capability):
            ROUTED.labels(route.service, route.body, "CAPABILITY_NOT_ANNOUNCED").inc()
            name = bodies.capability_name(route.capability)
            err = ParleyError(
                ErrorCode.ERROR_CODE_CAPABILITY_NOT_ANNOUNCED,
                f"{route.body} needs the {name} capability, which this session did not "
                f"announce in its Hello (enable it before starting the client)",
                "capabilities",
            )
            await session.send_error(err, envelope.seq)
            return
        if session.forwarding >= self._max_in_flight:
            ROUTED.labels(route.service, route.body, "RATE_LIMITED").inc()
            err = ParleyError(
                ErrorCode.ERROR_CODE_RATE_LIMITED,
                f"{self._max_in_flight} requests of this session already wait for their "
                "replies; the frame was ignored",
            )
            await session.send_error(err, envelope.seq)
            return
        session.forwarding += 1
        task = asyncio.create_task(self._forward(session, envelope, route))
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait (at most `timeout`) for the replies still on their way."""
        try:
            await asyncio.wait_for(self._idle.wait(), max(0.0, timeout))
            return True
        except TimeoutError:
            return False

    async def cancel(self) -> None:
        await tasks.stop(*self._tasks)

    async def _forward(self, session: Session, envelope: client_pb2.Envelope, route: Route) -> None:
        started = time.perf_counter()
        outcome = "ok"
        try:
            # A frame whose client asked for it to be traced is a span until its reply is
            # out; the service's span (and all it does) is its child.
            name = f"frame {route.body}"
            with tracing.frame_span("parley.gateway", name, envelope.traceparent) as span:
                try:
                    reply = await self._ask(session, envelope, route)
                except ParleyError as err:
                    outcome = err.code_name
                    span.set_attribute("parley.error", outcome)
                    await session.send_error(err, envelope.seq)
                else:
                    reply.reply_to = envelope.seq
                    await session.send(reply)
        finally:
            session.forwarding -= 1
            ROUTED.labels(route.service, route.body, outcome).inc()
            ROUTED_SECONDS.labels(route.service).observe(time.perf_counter() - started)

    async def _ask(
        self, session: Session, envelope: client_pb2.Envelope, route: Route
    ) -> client_pb2.Envelope:
        request = routing_pb2.ClientRequest(
            caller=routing_pb2.Caller(
                application_key=session.application_key,
                user_id=session.user_id,
                instance_id=session.instance_id,
                session_id=session.session_id,
                gateway_id=self._gateway_id,
                connection_id=session.connection_id,
                capabilities=bodies.capability_list(session.capabilities),
            ),
            envelope=framing.encode(envelope),
        )
        try:
            answer = await self._bus.request(
                route.subject, request, client_pb2.Envelope, route.timeout_seconds
            )
        except ParleyError as err:
            if isinstance(err, Unreachable):  # not the service's own UNAVAILABLE answer
                raise ParleyError(
                    ErrorCode.ERROR_CODE_UNAVAILABLE,
                    f"the {route.service} service is not available; retry shortly",
                ) from err
            if err.code == ErrorCode.ERROR_CODE_TIMEOUT:
                raise ParleyError(
                    ErrorCode.ERROR_CODE_TIMEOUT,
                    f"the {route.service} service did not answer {route.body} within "
                    f"{route.timeout_seconds:g} s; retry",
                ) from err
            raise
        body = framing.body_name(answer)
        if body not in bodies.REPLY_BODIES:
            log.error("service_reply_refused", service=route.service, body=body or "none")
            raise ParleyError(
                ErrorCode.ERROR_CODE_INTERNAL,
                f"the {route.service} service answered {route.body} with no reply body",
            )
        return answer
