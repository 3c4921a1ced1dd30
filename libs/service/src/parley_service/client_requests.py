"""Client requests as a service receives them: the routed body and its verified caller.

The gateway forwards each routed client body as a `parley.v1.ClientRequest`; the caller in
it is what the gateway verified (access token, Hello). A service takes identity from the
`Caller` only, never from fields of the body. `Bus.client_endpoint` declares a handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from parley.v1 import client_pb2, options_pb2, routing_pb2
from parley_protocol import bodies, framing
from parley_protocol.bodies import Route
from parley_protocol.errors import ErrorCode, ParleyError

Req = TypeVar("Req", bound=Message)

ClientHandler = Callable[["Caller", Req], Awaitable[Message]]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a client request, as the gateway verified it."""

    application_key: str
    user_id: str
    instance_id: str
    session_id: str
    gateway_id: str
    connection_id: str
    capabilities: frozenset[int]

    @classmethod
    def from_proto(cls, caller: routing_pb2.Caller) -> Caller:
        return cls(
            application_key=caller.application_key,
            user_id=caller.user_id,
            instance_id=caller.instance_id,
            session_id=caller.session_id,
            gateway_id=caller.gateway_id,
            connection_id=caller.connection_id,
            capabilities=frozenset(int(c) for c in caller.capabilities),
        )

    def to_proto(self) -> routing_pb2.Caller:
        return routing_pb2.Caller(
            application_key=self.application_key,
            user_id=self.user_id,
            instance_id=self.instance_id,
            session_id=self.session_id,
            gateway_id=self.gateway_id,
            connection_id=self.connection_id,
            capabilities=bodies.capability_list(bodies.capability_mask_of(self.capabilities)),
        )

    def has(self, capability: int) -> bool:
        return capability == options_pb2.CAPABILITY_NONE or capability in self.capabilities


def client_request_handler(
    route: Route, request_type: type[Req], handler: ClientHandler[Req]
) -> Callable[[routing_pb2.ClientRequest], Awaitable[client_pb2.Envelope]]:
    """A bus handler of ClientRequests for `route`: unwraps the body, checks the caller,
    calls `handler(caller, body)` and wraps its REPLY body in an Envelope."""

    async def handle(request: routing_pb2.ClientRequest) -> client_pb2.Envelope:
        caller = Caller.from_proto(request.caller)
        if not caller.application_key or not caller.user_id or not caller.connection_id:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                "a client request names no caller; only gateways forward client requests",
                "caller",
            )
        if not caller.has(route.capability):
            raise ParleyError(
                ErrorCode.ERROR_CODE_CAPABILITY_NOT_ANNOUNCED,
                f"{route.body} needs the {bodies.capability_name(route.capability)} capability",
                "capabilities",
            )
        envelope = client_pb2.Envelope()
        try:
            envelope.ParseFromString(request.envelope)
        except DecodeError as exc:
            raise ParleyError(
                ErrorCode.ERROR_CODE_BAD_FRAME, "the client request's envelope is unreadable"
            ) from exc
        if framing.body_name(envelope) != route.body:
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE,
                f"{route.subject} takes {route.body}, not {framing.body_name(envelope) or 'nothing'}",
            )
        body = getattr(envelope, route.body)
        assert isinstance(body, request_type)
        reply = await handler(caller, body)
        if bodies.body_of(reply) not in bodies.REPLY_BODIES:
            raise TypeError(
                f"the handler of {route.body} answered with {reply.DESCRIPTOR.full_name}, "
                "which is not a REPLY body of parley.v1.Envelope"
            )
        return bodies.envelope_of(reply)

    return handle
