"""The gateway's OpenAPI document: valid OpenAPI 3.1, and the same routes the gateway serves."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from openapi_spec_validator import validate

from parley_gateway.http_api import HttpApi
from parley_gateway.openapi import OPENAPI_PATH, document_text
from parley_gateway.settings import GatewaySettings
from parley_protocol.clock import FakeClock

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
SIGNED_PREFIXES = ("/v1/conferences", "/v1/callouts", "/v1/stats")
# Signed routes that answer 404 of their own (no such room or participant).
NOT_FOUND_PREFIXES = ("/v1/conferences", "/v1/callouts")


def document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(document_text())
    return doc


def served_routes() -> set[tuple[str, str]]:
    """(method, path template) of every route the gateway's HTTP application serves; HEAD
    routes aiohttp adds beside GET ones, and the catch-all that answers 404 and 405, are
    left out."""
    gateway = SimpleNamespace(settings=GatewaySettings(), clock=FakeClock())
    app = HttpApi(gateway, bus=None).application()  # type: ignore[arg-type]
    routes = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        assert route.resource is not None
        routes.add((route.method.lower(), route.resource.canonical))
    return routes


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    validate(doc)  # raises on any error


def test_every_served_route_is_documented_and_every_documented_route_is_served() -> None:
    served, documented = served_routes(), documented_routes(document())
    assert served - documented == set(), "served but not in openapi.json"
    assert documented - served == set(), "in openapi.json but not served"
    # The check has something to compare: the REST routes and the document's own.
    assert ("patch", "/v1/conferences/id/{conferenceId}/{callId}") in served
    assert ("get", "/v1/stats/calls") in served
    assert ("get", OPENAPI_PATH) in served


def test_signed_routes_need_the_signature_and_the_client_routes_do_not() -> None:
    doc = document()
    scheme = doc["components"]["securitySchemes"]["applicationSignature"]
    assert scheme["scheme"] == "Application"
    for text in ("HMAC-SHA256", "x-timestamp", "Content-MD5", "x-content-sha256", "STALE"):
        assert text in scheme["description"], text
    assert doc["security"] == [{"applicationSignature": []}]
    for method, path in documented_routes(doc):
        operation = doc["paths"][path][method]
        if path.startswith(SIGNED_PREFIXES):
            assert "security" not in operation, (method, path)  # the document's default
        else:
            assert operation.get("security") == [], (method, path)


def test_every_operation_documents_its_problem_responses() -> None:
    doc = document()
    for method, path in documented_routes(doc):
        responses = doc["paths"][path][method]["responses"]
        if path == OPENAPI_PATH:
            continue
        assert "default" in responses, (method, path)
        if path.startswith(SIGNED_PREFIXES):
            for status in ("400", "401", "503"):
                assert status in responses, (method, path, status)
        if path.startswith(NOT_FOUND_PREFIXES):
            assert "404" in responses, (method, path)
    problem = doc["components"]["responses"]["Unavailable"]["content"]
    assert set(problem) == {"application/problem+json"}
