"""The public HTTP API: registration and tokens (forwarded to auth), the JWKS, /v1/connect,
the app-backend REST API (`rest.py`) and the OpenAPI document of them all (`openapi.py`).

Bodies are JSON in the proto3 JSON mapping of the auth messages (original field names);
errors are `application/problem+json` with a Parley code. A body that is too large, not
JSON, not an object, has an unknown field or a field of the wrong type gets a 4xx naming
the problem; it never reaches auth.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from parley.v1 import auth_pb2
from parley_gateway.gateway import Gateway
from parley_gateway.openapi import OPENAPI_PATH, handle_openapi
from parley_gateway.problems import problem_for
from parley_gateway.request_body import MAX_BODY_BYTES, invalid, json_object, read_body
from parley_gateway.rest import RestApi
from parley_gateway.ws import handle_connect
from parley_protocol import subjects
from parley_service import tracing
from parley_service.bus import Bus
from parley_service.logs import get_logger

log = get_logger("parley.gateway.http")

AUTH_TIMEOUT_SECONDS = 5.0

M = TypeVar("M", bound=Message)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def read_message(request: web.Request, message_type: type[M]) -> M:
    """The request body as `message_type`, or a ParleyError saying what is wrong with it."""
    data = json_object(await read_body(request))
    message = message_type()
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise invalid(f"request body does not fit {message_type.__name__}: {exc}") from exc
    except RecursionError as exc:
        raise invalid("request body is nested too deeply") from exc
    return message


class ReleasedResponse(web.Response):
    """A response that lets go of its body and headers once it is sent.

    aiohttp's loop over a keep-alive connection holds the last response until the next
    request on that connection is answered. A client's WebSocket upgrade usually follows
    its registration or token request on the same connection and lasts its whole session,
    so every connected client would otherwise keep that response (about a kilobyte).
    """

    async def write_eof(self, data: bytes = b"") -> None:
        await super().write_eof(data)
        self.body = None
        self.headers.clear()


def message_response(message: Message) -> web.Response:
    body = json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True))
    return ReleasedResponse(text=body, content_type="application/json")


def traced(handler: Handler) -> Handler:
    """`handler` as a span continuing the caller's `traceparent` (so registration is one
    trace from the client through auth), what it raises answered as a problem response:
    ParleyError -> its problem, anything unexpected -> 500 INTERNAL."""

    async def run(request: web.Request) -> web.StreamResponse:
        resource = request.match_info.route.resource
        name = f"{request.method} {resource.canonical if resource is not None else 'unmatched'}"
        with tracing.server_span("parley.gateway", name, request.headers) as span:
            try:
                response = await handler(request)
            except Exception as exc:
                response = problem_for(request, exc)
            span.set_attribute("http.response.status_code", response.status)
            return response

    return run


async def unmatched(request: web.Request) -> web.StreamResponse:
    """What no route takes: 405 naming the methods its path takes, else 404."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        match, methods = await resource.resolve(request)
        if match is None:
            allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


class HttpApi:
    def __init__(self, gateway: Gateway, bus: Bus) -> None:
        self.gateway = gateway
        self.bus = bus

    def application(self) -> web.Application:
        """Every route but the WebSocket upgrade `traced`; no middleware. With one, aiohttp
        runs each request through a coroutine of its own as well, which for the upgrade
        lasts the whole session (about 300 bytes of every idle connection); the upgrade's
        handler makes its own problem responses."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        router = app.router
        router.add_get("/v1/connect", functools.partial(handle_connect, self.gateway))
        rest = RestApi(self.bus, self.gateway.clock, self.gateway.settings.rest_max_skew_seconds)
        routes = [
            web.post("/v1/register", self.register),
            web.post("/v1/token", self.token),
            web.get("/v1/jwks", self.jwks),
            web.get(OPENAPI_PATH, handle_openapi),
            *rest.routes(),
        ]
        for route in routes:
            web.RouteDef(route.method, route.path, traced(route.handler), route.kwargs).register(
                router
            )
        router.add_route("*", "/{path:.*}", traced(unmatched))  # last: the others first
        return app

    async def register(self, request: web.Request) -> web.Response:
        body = await read_message(request, auth_pb2.RegisterRequest)
        reply = await self.bus.request(
            subjects.AUTH_REGISTER, body, auth_pb2.RegisterResponse, AUTH_TIMEOUT_SECONDS
        )
        return message_response(reply)

    async def token(self, request: web.Request) -> web.Response:
        body = await read_message(request, auth_pb2.TokenRequest)
        reply = await self.bus.request(
            subjects.AUTH_TOKEN, body, auth_pb2.TokenResponse, AUTH_TIMEOUT_SECONDS
        )
        return message_response(reply)

    async def jwks(self, request: web.Request) -> web.Response:
        text = await self.gateway.verifier.jwks_json()
        return web.Response(
            text=text,
            content_type="application/json",
            headers={"Cache-Control": "public, max-age=60"},
        )
