"""Every body of the client protocol is declared once: its kind, and for a client body either
a route to a service or a gateway handler (never both, never neither)."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from parley.v1 import echo_pb2, options_pb2
from parley_gateway.messages import HANDLERS
from parley_protocol import bodies, subjects
from parley_protocol.pb import client


def test_the_protocol_declares_every_body_once() -> None:
    assert bodies.BODIES.problems == ()
    assert bodies.BODIES.check(HANDLERS) == []
    names = {f.name for f in client.Envelope.DESCRIPTOR.oneofs_by_name["body"].fields}
    assert names == bodies.CLIENT_BODIES | bodies.REPLY_BODIES | bodies.EVENT_BODIES


def test_routes_come_from_the_message_options() -> None:
    route = bodies.route_of(echo_pb2.EchoRequest)
    assert route.body == "echo_request"
    assert route.service == "echo"
    assert route.capability == options_pb2.CAPABILITY_MESSAGING
    assert route.timeout_seconds == 5.0
    assert route.subject == subjects.client_request("echo", "echo_request")
    assert route.queue == "echo"
    with pytest.raises(ValueError, match="no \\(route\\)"):
        bodies.route_of(client.Ping)
    with pytest.raises(ValueError, match="not a body"):
        bodies.body_of(client.Capabilities)


def test_envelope_of_puts_a_message_in_its_body() -> None:
    envelope = bodies.envelope_of(echo_pb2.EchoReply(text="hi"), reply_to=7)
    assert envelope.WhichOneof("body") == "echo_reply"
    assert envelope.reply_to == 7
    assert envelope.echo_reply.text == "hi"


def test_capability_masks_round_trip() -> None:
    mask = bodies.capability_mask(client.Capabilities(calling=True, managed_push=True))
    assert bodies.has_capability(mask, options_pb2.CAPABILITY_CALLING)
    assert bodies.has_capability(mask, options_pb2.CAPABILITY_MANAGED_PUSH)
    assert not bodies.has_capability(mask, options_pb2.CAPABILITY_MESSAGING)
    assert bodies.has_capability(0, options_pb2.CAPABILITY_NONE)
    listed = bodies.capability_list(mask)
    assert listed == [options_pb2.CAPABILITY_CALLING, options_pb2.CAPABILITY_MANAGED_PUSH]
    assert bodies.capability_mask_of(listed) == mask


Field = tuple[str, int, options_pb2.Route | None]


def _synthetic_envelope(fields: list[Field]) -> object:
    """A descriptor of an Envelope-like message with a `body` oneof of `fields`
    (name, kind or 0 for none, route or None), in a pool of its own."""
    pool = descriptor_pool.DescriptorPool()
    for known in (descriptor_pb2.DESCRIPTOR, options_pb2.DESCRIPTOR):
        proto = descriptor_pb2.FileDescriptorProto()
        known.CopyToProto(proto)
        pool.Add(proto)
    file = descriptor_pb2.FileDescriptorProto(
        name="synthetic.proto",
        package="synthetic",
        syntax="proto3",
        dependency=["parley/v1/options.proto"],
    )
    envelope = descriptor_pb2.DescriptorProto(name="Envelope")
    envelope.oneof_decl.add(name="body")
    for number, (name, kind, route) in enumerate(fields, start=10):
        message = file.message_type.add(name=name.title().replace("_", ""))
        if route is not None:
            message.options.Extensions[options_pb2.route].CopyFrom(route)
        field = envelope.field.add(
            name=name,
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
            type_name=f".synthetic.{message.name}",
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            oneof_index=0,
        )
        if kind:
            field.options.Extensions[options_pb2.kind] = kind  # type: ignore[assignment]
    file.message_type.append(envelope)
    pool.Add(file)
    return pool.FindMessageTypeByName("synthetic.Envelope")


CLIENT = options_pb2.BODY_KIND_CLIENT
REPLY = options_pb2.BODY_KIND_REPLY


def test_a_client_body_without_route_or_handler_fails_the_check() -> None:
    synthetic = bodies.read_bodies(
        _synthetic_envelope(
            [
                ("hello", CLIENT, None),
                ("forgotten", CLIENT, None),
                ("do_it", CLIENT, options_pb2.Route(service="svc")),
                ("done", REPLY, None),
            ]
        )
    )
    assert synthetic.problems == ()
    assert synthetic.routes["do_it"].subject == "parley.client.svc.do_it"
    assert synthetic.check({"hello"}) == [
        "client body 'forgotten' has no route and no gateway handler"
    ]


def test_a_body_with_both_a_route_and_a_handler_fails_the_check() -> None:
    synthetic = bodies.read_bodies(
        _synthetic_envelope([("do_it", CLIENT, options_pb2.Route(service="svc"))])
    )
    assert synthetic.check({"do_it"}) == ["client body 'do_it' has a route and a gateway handler"]
    assert synthetic.check({"do_it", "nothing"})[-1] == (
        "the gateway handles 'nothing', which is not a client body"
    )


def test_bodies_without_a_kind_or_with_a_misplaced_route_are_reported() -> None:
    synthetic = bodies.read_bodies(
        _synthetic_envelope(
            [
                ("no_kind", 0, None),
                ("answer", REPLY, options_pb2.Route(service="svc")),
                ("nameless", CLIENT, options_pb2.Route(service="")),
                ("bad_name", CLIENT, options_pb2.Route(service="a.b")),
            ]
        )
    )
    assert synthetic.problems == (
        "body 'no_kind' declares no kind ([(parley.v1.kind) = ...])",
        "body 'answer' has a route but is not a client body",
        "the route of 'nameless' names no service (or not a subject token): ''",
        "the route of 'bad_name' names no service (or not a subject token): 'a.b'",
    )
