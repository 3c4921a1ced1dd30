"""What each body of the client protocol's Envelope is and where it goes, read from the protos.

Every field of `Envelope.body` declares its kind (`options.proto`): CLIENT (sent by clients),
REPLY (the server's answer to a client frame) or EVENT (the server's own, to a device). A
CLIENT body is either handled by the gateway itself or its message carries a `(route)`
option naming the service that answers it. Nothing here is kept by hand: a capability adds
its messages to the protos and this module sees them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from parley.v1 import client_pb2, options_pb2
from parley_protocol import subjects

DEFAULT_ROUTE_TIMEOUT_MS = 5000

Capability = options_pb2.Capability
BodyKind = options_pb2.BodyKind
# The generated stubs type extensions as plain field descriptors.
_KIND: Any = options_pb2.kind
_ROUTE: Any = options_pb2.route


def capability_name(capability: int) -> str:
    """CAPABILITY_MESSAGING -> "messaging": the field of `parley.v1.Capabilities` it names."""
    return Capability.Name(capability).removeprefix("CAPABILITY_").lower()


@dataclass(frozen=True)
class Route:
    """Where the gateway forwards a client body, from the `(route)` option of its message."""

    body: str
    service: str
    capability: int  # a Capability; CAPABILITY_NONE: any signed-in session may send it
    timeout_seconds: float

    @property
    def subject(self) -> str:
        return subjects.client_request(self.service, self.body)

    @property
    def queue(self) -> str:
        """Replicas of the service share the requests in one queue group."""
        return self.service


@dataclass(frozen=True)
class Bodies:
    """The bodies of one Envelope descriptor, by kind, with their routes."""

    client: frozenset[str]
    reply: frozenset[str]
    event: frozenset[str]
    routes: Mapping[str, Route]
    # Full name of a body's message type -> the body (field) name that carries it.
    by_message: Mapping[str, str]
    # What is wrong with the descriptor itself (a body without a kind, a route on a
    # non-client body, a message type carried by two bodies, a route without a service).
    problems: tuple[str, ...]

    @property
    def server(self) -> frozenset[str]:
        return self.reply | self.event

    def check(self, gateway_handled: Iterable[str]) -> list[str]:
        """Every problem of the protocol given the bodies the gateway handles itself: a client
        body must have exactly one of a route and a gateway handler."""
        handled = frozenset(gateway_handled)
        problems = list(self.problems)
        for body in sorted(self.client):
            routed = body in self.routes
            if routed and body in handled:
                problems.append(f"client body {body!r} has a route and a gateway handler")
            elif not routed and body not in handled:
                problems.append(f"client body {body!r} has no route and no gateway handler")
        for body in sorted(handled - self.client):
            problems.append(f"the gateway handles {body!r}, which is not a client body")
        return problems


def read_bodies(envelope: Any, oneof: str = "body") -> Bodies:
    """Classify the fields of the oneof of `envelope` (a message Descriptor) by their
    `(kind)` option."""
    kinds: dict[int, set[str]] = {
        options_pb2.BODY_KIND_CLIENT: set(),
        options_pb2.BODY_KIND_REPLY: set(),
        options_pb2.BODY_KIND_EVENT: set(),
    }
    routes: dict[str, Route] = {}
    by_message: dict[str, str] = {}
    problems: list[str] = []
    for field in envelope.oneofs_by_name[oneof].fields:
        kind = _kind(field)
        if kind not in kinds:
            problems.append(f"body {field.name!r} declares no kind ([(parley.v1.kind) = ...])")
            continue
        kinds[kind].add(field.name)
        message = field.message_type
        if message is None:
            problems.append(f"body {field.name!r} is not a message")
            continue
        other = by_message.get(message.full_name)
        if other is not None:
            problems.append(f"bodies {other!r} and {field.name!r} carry the same message type")
        by_message[message.full_name] = field.name
        route = _route(field.name, message)
        if route is None:
            continue
        if kind != options_pb2.BODY_KIND_CLIENT:
            problems.append(f"body {field.name!r} has a route but is not a client body")
        elif not route.service or not _is_token(route.service):
            problems.append(
                f"the route of {field.name!r} names no service (or not a subject token): "
                f"{route.service!r}"
            )
        else:
            routes[field.name] = route
    return Bodies(
        client=frozenset(kinds[options_pb2.BODY_KIND_CLIENT]),
        reply=frozenset(kinds[options_pb2.BODY_KIND_REPLY]),
        event=frozenset(kinds[options_pb2.BODY_KIND_EVENT]),
        routes=routes,
        by_message=by_message,
        problems=tuple(problems),
    )


def _kind(field: FieldDescriptor) -> int:
    options = field.GetOptions()
    if not options.HasExtension(_KIND):
        return options_pb2.BODY_KIND_UNSPECIFIED
    return int(options.Extensions[_KIND])


def _route(body: str, message: Descriptor) -> Route | None:
    options = message.GetOptions()
    if not options.HasExtension(_ROUTE):
        return None
    declared: options_pb2.Route = options.Extensions[_ROUTE]
    return Route(
        body=body,
        service=declared.service,
        capability=int(declared.capability),
        timeout_seconds=(declared.timeout_ms or DEFAULT_ROUTE_TIMEOUT_MS) / 1000,
    )


def _is_token(name: str) -> bool:
    return all(c.isalnum() or c in "-_" for c in name)


# The client protocol as generated from protos/parley/v1.
BODIES = read_bodies(client_pb2.Envelope.DESCRIPTOR)
CLIENT_BODIES = BODIES.client
SERVER_BODIES = BODIES.server
REPLY_BODIES = BODIES.reply
EVENT_BODIES = BODIES.event
ROUTES = BODIES.routes


def body_of(message: Message | type[Message]) -> str:
    """The Envelope body that carries messages of this type; ValueError if none does."""
    name = message.DESCRIPTOR.full_name
    body = BODIES.by_message.get(name)
    if body is None:
        raise ValueError(f"{name} is not a body of parley.v1.Envelope")
    return body


def route_of(message: Message | type[Message]) -> Route:
    """The route of a client message type; ValueError if it has none."""
    body = body_of(message)
    route = ROUTES.get(body)
    if route is None:
        raise ValueError(f"{message.DESCRIPTOR.full_name} ({body}) has no (route) option")
    return route


def envelope_of(message: Message, seq: int = 0, reply_to: int = 0) -> client_pb2.Envelope:
    """An Envelope carrying `message` as its body."""
    envelope = client_pb2.Envelope(seq=seq, reply_to=reply_to)
    getattr(envelope, body_of(message)).CopyFrom(message)
    return envelope


def capability_mask(capabilities: client_pb2.Capabilities) -> int:
    """The capabilities a Hello announced, as a bit mask (bit n: Capability n)."""
    mask = 0
    for value in Capability.values():
        if value != options_pb2.CAPABILITY_NONE and getattr(capabilities, capability_name(value)):
            mask |= 1 << value
    return mask


def has_capability(mask: int, capability: int) -> bool:
    """Whether `mask` includes `capability` (CAPABILITY_NONE: always)."""
    return capability == options_pb2.CAPABILITY_NONE or bool(mask & (1 << capability))


def capability_list(mask: int) -> list[options_pb2.Capability]:
    """The Capability values in `mask` (for a Caller)."""
    return list(_capability_values(mask))


@functools.lru_cache(maxsize=256)
def _capability_values(mask: int) -> tuple[options_pb2.Capability, ...]:
    # Asked for every forwarded request; the masks in use are few.
    values = [v for v in Capability.values() if v != options_pb2.CAPABILITY_NONE and mask >> v & 1]
    return tuple(cast(list[options_pb2.Capability], values))


def capability_mask_of(values: Iterable[int]) -> int:
    """A bit mask of Capability values (the inverse of `capability_list`)."""
    mask = 0
    for value in values:
        mask |= 1 << value
    return mask


def _check_capabilities() -> None:
    fields = set(client_pb2.Capabilities.DESCRIPTOR.fields_by_name)
    for value in Capability.values():
        if value != options_pb2.CAPABILITY_NONE and capability_name(value) not in fields:
            raise RuntimeError(f"{Capability.Name(value)} names no field of parley.v1.Capabilities")


_check_capabilities()
