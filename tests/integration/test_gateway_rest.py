"""The app-backend REST API (conferences, callouts) through a real gateway and a real auth
on NATS and PostgreSQL; the conference service is a responder that records what reached it
(tests/support/conference_responder.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import nats
import pytest
import pytest_asyncio
from yarl import URL

from parley.v1 import conference_pb2
from parley_auth.request_signatures import NOT_SIGNED
from parley_client.backend import BackendClient, ConferenceParticipant
from parley_client.errors import ParleyError as SdkError
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_gateway.app import gateway_of
from parley_gateway.app import setup as gateway_setup
from parley_gateway.openapi import document_text
from parley_gateway.settings import GatewaySettings
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.signatures import sign_rest_request
from parley_service import runtime as rt
from tests.integration.gateway_stack import App, Stack, module_stack
from tests.support.conference_responder import ConferenceResponder

CALL = "5f0c2a1e-8d3b-4c6f-9e7a-1b2c3d4e5f60"
OTHER_CALL = "6a1d3b2f-9e4c-4d7a-8f8b-2c3d4e5f6a71"
JSON = "application/json"
OPENAPI = json.loads(document_text())


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> AsyncIterator[Stack]:
    async with module_stack(nats_server.url, postgres_server, "test_rest") as s:
        yield s


@pytest_asyncio.fixture
async def conference(nats_server: EmbeddedNats) -> AsyncIterator[ConferenceResponder]:
    nc = await nats.connect(nats_server.url)
    responder = ConferenceResponder(nc)
    await responder.start()
    try:
        yield responder
    finally:
        await responder.stop()
        await nc.close()


async def send(
    stack: Stack,
    app: App,
    method: str,
    path: str,
    payload: Any = None,
    *,
    body: bytes | None = None,
    key: str | None = None,
    secret: str | None = None,
    timestamp: Any = None,
    hash_header: str = "x-content-sha256",
    sign_path: str | None = None,
    sign_body: bytes | None = None,
    drop: tuple[str, ...] = (),
    extra: dict[str, str] | None = None,
    gateway: int = 0,
) -> tuple[int, Any]:
    """Send a request signed as an app backend would (the parts to sign overridable, to
    forge one); its status and JSON answer."""
    if body is None:
        body = b"" if payload is None else json.dumps(payload).encode()
    headers = sign_rest_request(
        key or app.key,
        secret or app.secret,
        method,
        sign_path or path,
        body if sign_body is None else sign_body,
        JSON if body else "",
        timestamp,
        hash_header,
    )
    for name in drop:
        headers.pop(name, None)
    headers.update(extra or {})
    url = URL(stack.url(gateway) + path, encoded=True)
    async with stack.http.request(method, url, data=body or None, headers=headers) as resp:
        text = await resp.text()
        if resp.status >= 400:
            assert resp.content_type == "application/problem+json", text
        return resp.status, json.loads(text) if text else None


def room(conference_id: str) -> str:
    """A room's path: the id percent-encoded whole (a lone `.` or `..` too, so it is not
    taken for a dot segment)."""
    segment = urllib.parse.quote(conference_id, safe="")
    return "/v1/conferences/id/" + ("%2E" * len(segment) if segment in (".", "..") else segment)


def conforms(value: Any, schema_name: str) -> None:
    """`value` fits the OpenAPI document's schema `schema_name`."""
    schema = dict(OPENAPI)
    schema["$ref"] = f"#/components/schemas/{schema_name}"
    jsonschema.Draft202012Validator(schema).validate(value)


def problem(status: int, answer: Any, want_status: int, code: str, detail: str = "") -> None:
    assert (status, answer["code"]) == (want_status, code), answer
    assert answer["status"] == want_status
    assert detail in answer["detail"], answer
    conforms(answer, "Problem")


def participant(call_id: str, user: str, number: str, joined: int, muted: bool = False) -> Any:
    return conference_pb2.ConferenceParticipant(
        call_id=call_id, user_id=user, number=number, joined_at_ms=joined, muted=muted
    )


# The routes, correctly signed ---------------------------------------------------------------


async def test_get_lists_the_participants_with_whole_seconds_since_they_joined(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    now = 1_800_000_000_000
    conference.info = conference_pb2.ConferenceInfo(
        now_ms=now,
        participants=[
            participant(CALL, "alice", "", now - 61_999),
            participant(OTHER_CALL, "", "+14155550101", now - 500, muted=True),
        ],
    )
    status, answer = await send(stack, app, "GET", room("standup"))
    assert status == 200, answer
    assert answer == {
        "participants": [
            {
                "id": CALL,
                "userId": "alice",
                "cli": "",
                "duration": 61,
                "muted": False,
                "onhold": False,
            },
            {
                "id": OTHER_CALL,
                "userId": "",
                "cli": "+14155550101",
                "duration": 0,
                "muted": True,
                "onhold": False,
            },
        ]
    }
    conforms(answer, "Conference")
    assert conference.received == [
        conference_pb2.ConferenceQuery(application_key=app.key, conference_id="standup")
    ]


async def test_a_room_with_nobody_in_it_is_not_found(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    status, answer = await send(stack, app, "GET", room("empty room"))
    problem(status, answer, 404, "NOT_FOUND", "'empty room' has no participants")


@pytest.mark.parametrize("hash_header", ["x-content-sha256", "Content-MD5"])
async def test_patch_mutes_and_unmutes_a_participant(
    stack: Stack, app: App, conference: ConferenceResponder, hash_header: str
) -> None:
    path = f"{room('standup')}/{CALL}"
    for command in ("mute", "unmute"):
        status, answer = await send(
            stack, app, "PATCH", path, {"command": command}, hash_header=hash_header
        )
        assert (status, answer) == (204, None)
    kinds = conference_pb2.ConferenceCommandKind
    assert conference.received == [
        conference_pb2.ConferenceCommand(
            application_key=app.key, conference_id="standup", call_id=CALL, command=kind
        )
        for kind in (kinds.CONFERENCE_COMMAND_KIND_MUTE, kinds.CONFERENCE_COMMAND_KIND_UNMUTE)
    ]


async def test_patch_refuses_other_commands_and_bodies_before_the_service(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    path = f"{room('standup')}/{CALL}"
    status, answer = await send(stack, app, "PATCH", path, {"command": "onhold"})
    problem(status, answer, 400, "INVALID_ARGUMENT", "'onhold' is not supported")
    assert answer["field"] == "command"
    status, answer = await send(stack, app, "PATCH", path, {"mute": True})
    problem(status, answer, 400, "INVALID_ARGUMENT", "command is missing")
    status, answer = await send(stack, app, "PATCH", path, body=b"[1]")
    problem(status, answer, 400, "INVALID_ARGUMENT", "must be a JSON object")
    status, answer = await send(
        stack, app, "PATCH", f"{room('standup')}/not-a-call", {"command": "mute"}
    )
    problem(status, answer, 400, "INVALID_ARGUMENT", "not a lowercase UUID")
    assert conference.received == []


async def test_an_unknown_participant_is_not_found(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    conference.affected = 0
    path = f"{room('standup')}/{CALL}"
    status, answer = await send(stack, app, "PATCH", path, {"command": "mute"})
    problem(status, answer, 404, "NOT_FOUND", f"no participant with call id {CALL}")
    status, answer = await send(stack, app, "DELETE", path)
    problem(status, answer, 404, "NOT_FOUND", f"no participant with call id {CALL}")
    status, answer = await send(stack, app, "DELETE", room("standup"))
    problem(status, answer, 404, "NOT_FOUND", "has no participants")
    # The service's own NOT_FOUND (or any error) passes with its reason.
    conference.error = ParleyError(ErrorCode.ERROR_CODE_NOT_FOUND, "no room standup here")
    status, answer = await send(stack, app, "GET", room("standup"))
    problem(status, answer, 404, "NOT_FOUND", "no room standup here")
    conference.error = ParleyError(ErrorCode.ERROR_CODE_INSUFFICIENT_CREDIT, "top up first")
    status, answer = await send(
        stack, app, "POST", "/v1/callouts", callout("r", "number", "+14155550101")
    )
    problem(status, answer, 400, "INSUFFICIENT_CREDIT", "top up first")


async def test_delete_kicks_one_participant_or_all(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    status, _ = await send(stack, app, "DELETE", f"{room('standup')}/{CALL}")
    assert status == 204
    conference.affected = 3
    status, _ = await send(stack, app, "DELETE", room("standup"))
    assert status == 204
    kick = conference_pb2.CONFERENCE_COMMAND_KIND_KICK
    assert conference.received == [
        conference_pb2.ConferenceCommand(
            application_key=app.key, conference_id="standup", call_id=CALL, command=kick
        ),
        conference_pb2.ConferenceCommand(
            application_key=app.key, conference_id="standup", call_id="", command=kick
        ),
    ]


def callout(conference_id: str, kind: str, endpoint: str, **more: Any) -> dict[str, Any]:
    inner: dict[str, Any] = {
        "conferenceId": conference_id,
        "destination": {"type": kind, "endpoint": endpoint},
    }
    inner.update(more)
    return {"method": "conferenceCallout", "conferenceCallout": inner}


async def test_callouts_ring_a_user_or_dial_a_number_and_answer_the_call_id(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    body = callout(
        "standup",
        "username",
        "alice smith",
        headers={"topic": "weekly"},
        custom="anything at all",
        greeting={"text": "hi"},
    )
    status, answer = await send(stack, app, "POST", "/v1/callouts", body)
    assert (status, answer) == (200, {"callId": conference.call_id})
    conforms(answer, "CalloutResponse")
    conforms(body, "CalloutRequest")
    body = callout("standup", "number", "+14155550101", headers={"x-account": "7"})
    status, answer = await send(stack, app, "POST", "/v1/callouts", body)
    assert status == 200, answer
    body = callout("standup", "sip", "bob@sip.example.com:5070")
    conforms(body, "CalloutRequest")
    status, answer = await send(stack, app, "POST", "/v1/callouts", body)
    assert status == 200, answer
    assert conference.received == [
        conference_pb2.ConferenceCallout(
            application_key=app.key,
            conference_id="standup",
            user_id="alice smith",
            headers={"topic": "weekly"},
        ),
        conference_pb2.ConferenceCallout(
            application_key=app.key,
            conference_id="standup",
            phone_number="+14155550101",
            headers={"x-account": "7"},
        ),
        conference_pb2.ConferenceCallout(
            application_key=app.key,
            conference_id="standup",
            sip_uri="bob@sip.example.com:5070",
        ),
    ]


@pytest.mark.parametrize(
    ("body", "code", "detail", "field"),
    [
        ({**callout("r", "username", "a"), "method": "ttsCallout"}, "INVALID_ARGUMENT",
         "'ttsCallout' is not supported", "method"),
        ({"conferenceCallout": {}}, "INVALID_ARGUMENT", "method is missing", "method"),
        ({"method": "conferenceCallout"}, "INVALID_ARGUMENT", "conferenceCallout is missing",
         "conferenceCallout"),
        (callout("r", "fax", "a@b"), "INVALID_ARGUMENT", "destination type 'fax'",
         "conferenceCallout.destination.type"),
        (callout("r", "sip", "nobody"), "INVALID_ARGUMENT", "user@server",
         "conferenceCallout.destination.endpoint"),
        (callout("r", "sip", "bob@h", headers={"topic": "x"}), "INVALID_HEADER",
         "prefixed 'x-'", "conferenceCallout.headers"),
        (callout("r", "number", "0701234567"), "INVALID_PHONE_NUMBER", "not E.164",
         "conferenceCallout.destination.endpoint"),
        (callout("r", "username", "x" * 41), "INVALID_USER_ID", "41 characters",
         "conferenceCallout.destination.endpoint"),
        (callout("r", "username", "a", headers={"n": 1}), "INVALID_HEADER",
         "strings to strings", "conferenceCallout.headers"),
        (callout("r", "number", "+14155550101", headers={"topic": "x"}), "INVALID_HEADER",
         "prefixed 'x-'", "conferenceCallout.headers"),
        (callout("x" * 65, "username", "a"), "INVALID_CONFERENCE_ID", "65 characters",
         "conferenceCallout.conferenceId"),
        (callout("", "username", "a"), "INVALID_CONFERENCE_ID", "empty",
         "conferenceCallout.conferenceId"),
    ],
)  # fmt: skip
async def test_bad_callouts_are_refused_with_a_specific_reason(
    stack: Stack,
    app: App,
    conference: ConferenceResponder,
    body: Any,
    code: str,
    detail: str,
    field: str,
) -> None:
    status, answer = await send(stack, app, "POST", "/v1/callouts", body)
    problem(status, answer, 400, code, detail)
    assert answer["field"] == field
    assert conference.received == []


# Conference ids ------------------------------------------------------------------------------

ODD_IDS = [
    "a b",
    "room.1",
    "*",
    ">",
    "a.b.*.>",
    "x/y",
    "..",
    ".",
    "100%",
    "é ü",
    "+1 (555)",
    "?#&=",
]


async def test_odd_conference_ids_arrive_intact(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    conference.info = conference_pb2.ConferenceInfo(
        now_ms=1000, participants=[participant(CALL, "a", "", 1000)]
    )
    for conference_id in ODD_IDS:
        conference.received.clear()
        assert (await send(stack, app, "GET", room(conference_id)))[0] == 200, conference_id
        assert (await send(stack, app, "DELETE", room(conference_id)))[0] == 204
        path = f"{room(conference_id)}/{CALL}"
        assert (await send(stack, app, "PATCH", path, {"command": "mute"}))[0] == 204
        assert (await send(stack, app, "DELETE", path))[0] == 204
        body = callout(conference_id, "username", "a")
        assert (await send(stack, app, "POST", "/v1/callouts", body))[0] == 200
        got = [m.conference_id for m in conference.received]
        assert got == [conference_id] * 5, (conference_id, got)


async def test_a_65_character_conference_id_is_refused_and_64_are_taken(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    for path in (room("x" * 65), f"{room('é' * 65)}/{CALL}"):
        method = "GET" if path.count("/") == 4 else "DELETE"
        status, answer = await send(stack, app, method, path)
        problem(status, answer, 400, "INVALID_CONFERENCE_ID", "65 characters long")
    assert conference.received == []
    conference.info = conference_pb2.ConferenceInfo(participants=[participant(CALL, "a", "", 1)])
    assert (await send(stack, app, "GET", room("é" * 64)))[0] == 200
    assert conference.received[0].conference_id == "é" * 64


# Signatures ------------------------------------------------------------------------------------


async def test_a_wrong_secret_and_an_unknown_application_get_the_same_401(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    other_secret = base64.b64encode(b"0123456789abcdef").decode()
    wrong = await send(stack, app, "GET", room("standup"), secret=other_secret)
    unknown = await send(stack, app, "GET", room("standup"), key=str(uuid.uuid4()))
    for status, answer in (wrong, unknown):
        problem(status, answer, 401, "INVALID_SIGNATURE", NOT_SIGNED)
    assert wrong[1]["detail"] == unknown[1]["detail"]
    assert conference.received == []


async def test_an_application_of_the_other_environment_is_forbidden(
    stack: Stack, conference: ConferenceResponder
) -> None:
    production = await stack.create_app("production")
    status, answer = await send(stack, production, "GET", room("standup"))
    problem(status, answer, 403, "WRONG_ENVIRONMENT", "production")
    assert conference.received == []


async def test_a_tampered_body_is_refused(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    path = f"{room('standup')}/{CALL}"
    signed = b'{"command":"unmute"}'
    sent = b'{"command":"mute"}'
    # The body changed, the hash header not: the gateway sees the mismatch itself.
    for hash_header in ("x-content-sha256", "Content-MD5"):
        status, answer = await send(
            stack, app, "PATCH", path, body=sent, sign_body=signed, hash_header=hash_header
        )
        problem(status, answer, 401, "INVALID_SIGNATURE", f"does not match its {hash_header}")
    # The hash header made to fit the new body: the signature no longer does.
    fitted = base64.b64encode(hashlib.sha256(sent).digest()).decode()
    status, answer = await send(
        stack, app, "PATCH", path, body=sent, sign_body=signed, extra={"x-content-sha256": fitted}
    )
    problem(status, answer, 401, "INVALID_SIGNATURE", NOT_SIGNED)
    assert conference.received == []


async def test_a_body_without_a_hash_header_is_refused(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    path = f"{room('standup')}/{CALL}"
    status, answer = await send(
        stack, app, "PATCH", path, {"command": "mute"}, drop=("x-content-sha256",)
    )
    problem(status, answer, 401, "UNAUTHENTICATED", "has a body but neither")
    md5 = base64.b64encode(hashlib.md5(b"{}").digest()).decode()
    status, answer = await send(
        stack, app, "PATCH", path, {"command": "mute"}, extra={"Content-MD5": md5}
    )
    problem(status, answer, 400, "INVALID_ARGUMENT", "not both")
    assert conference.received == []


async def test_stale_timestamps_are_refused_and_those_within_the_skew_taken(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    conference.info = conference_pb2.ConferenceInfo(participants=[participant(CALL, "a", "", 1)])
    now = time.time()
    for when, direction in ((now - 620, "behind"), (now + 620, "ahead of")):
        status, answer = await send(stack, app, "GET", room("r"), timestamp=when)
        problem(status, answer, 401, "STALE_TIMESTAMP", f"s {direction} the gateway's clock")
        assert "within 600 s" in answer["detail"]
    assert conference.received == []
    for when in (now - 580, now + 580):
        assert (await send(stack, app, "GET", room("r"), timestamp=when))[0] == 200
    # The skew is the gateway's setting.
    strict = len(stack.gateways)
    await stack.add_gateway(rest_max_skew_seconds=30)
    status, answer = await send(stack, app, "GET", room("r"), timestamp=now - 60, gateway=strict)
    problem(status, answer, 401, "STALE_TIMESTAMP", "within 30 s")
    assert (await send(stack, app, "GET", room("r"), timestamp=now - 60))[0] == 200
    # Any ISO 8601 zone names the same instant.
    offset = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now))
    assert (await send(stack, app, "GET", room("r"), timestamp=offset))[0] == 200


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "Authorization header is missing"),
        ("Basic dXNlcjpwYXNz", "scheme must be Application"),
        ("Application", "must be Authorization: Application <application key>:<signature>"),
        ("Application 196087a1-e815-4bc4-8984-60d8d8a43f1d", "must be Authorization"),
        ("Application NOT-A-KEY:" + base64.b64encode(b"s" * 32).decode(), "not a lowercase GUID"),
        ("Application 196087a1-e815-4bc4-8984-60d8d8a43f1d:%%%", "not Base64 of an HMAC"),
        ("Application 196087a1-e815-4bc4-8984-60d8d8a43f1d:c2hvcnQ=", "not Base64 of an HMAC"),
    ],
)
async def test_a_missing_or_malformed_authorization_is_401_with_a_reason(
    stack: Stack,
    app: App,
    conference: ConferenceResponder,
    authorization: str | None,
    detail: str,
) -> None:
    extra = {} if authorization is None else {"Authorization": authorization}
    drop = ("Authorization",) if authorization is None else ()
    status, answer = await send(stack, app, "GET", room("r"), drop=drop, extra=extra)
    problem(status, answer, 401, "UNAUTHENTICATED", detail)
    assert answer["field"] == "Authorization"
    assert conference.received == []


async def test_a_missing_or_unreadable_timestamp_is_refused(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    status, answer = await send(stack, app, "GET", room("r"), drop=("x-timestamp",))
    problem(status, answer, 401, "UNAUTHENTICATED", "x-timestamp header is missing")
    for text in ("yesterday", "2026-11-30T18:00:00", str(int(time.time()))):
        status, answer = await send(stack, app, "GET", room("r"), timestamp=text)
        problem(status, answer, 400, "INVALID_ARGUMENT", "is not an ISO 8601 date and time")
        assert answer["field"] == "x-timestamp"
    assert conference.received == []


async def test_the_query_string_and_the_path_are_signed_as_sent(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    conference.info = conference_pb2.ConferenceInfo(participants=[participant(CALL, "a", "", 1)])
    path = room("a b") + "?verbose=1"
    assert (await send(stack, app, "GET", path))[0] == 200
    for signed_path in (room("a b"), room("a b").replace("%20", "+") + "?verbose=1"):
        status, answer = await send(stack, app, "GET", path, sign_path=signed_path)
        problem(status, answer, 401, "INVALID_SIGNATURE", NOT_SIGNED)
    assert len(conference.received) == 1


async def test_an_application_acts_only_on_its_own_key(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    other = await stack.create_app()
    # Another application's key with one's own secret: refused, nothing reaches the service.
    status, answer = await send(stack, app, "DELETE", room("standup"), key=other.key)
    problem(status, answer, 401, "INVALID_SIGNATURE", NOT_SIGNED)
    assert conference.received == []
    # Signed right, the request acts for the signer, whatever its body names.
    body = callout("standup", "username", "bob")
    body["applicationKey"] = app.key
    body["conferenceCallout"]["application_key"] = app.key
    assert (await send(stack, other, "POST", "/v1/callouts", body))[0] == 200
    assert (await send(stack, other, "DELETE", room("standup")))[0] == 204
    assert [m.application_key for m in conference.received] == [other.key, other.key]


async def test_no_conference_service_is_a_503(stack: Stack, app: App) -> None:
    for method, path, payload in (
        ("GET", room("r"), None),
        ("PATCH", f"{room('r')}/{CALL}", {"command": "mute"}),
        ("DELETE", room("r"), None),
        ("POST", "/v1/callouts", callout("r", "username", "a")),
    ):
        status, answer = await send(stack, app, method, path, payload)
        problem(
            status, answer, 503, "UNAVAILABLE", "the conference service is not available; retry"
        )


async def test_the_openapi_document_is_served(stack: Stack) -> None:
    async with stack.http.get(stack.url() + "/v1/openapi.json") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == OPENAPI


# The app-backend helper of the client package -----------------------------------------------


async def test_the_backend_client_drives_every_route(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    conference.info = conference_pb2.ConferenceInfo(
        now_ms=10_000, participants=[participant(CALL, "alice", "", 7_000, muted=True)]
    )
    odd = "a.b *>/.."
    async with BackendClient(stack.url(), app.key, app.secret) as backend:
        assert await backend.conference(odd) == [
            ConferenceParticipant(CALL, "alice", "", 3, True, False)
        ]
        await backend.mute(odd, CALL)
        await backend.unmute(odd, CALL)
        await backend.kick(odd, CALL)
        await backend.kick_all(odd)
        assert await backend.callout_user(odd, "bob", {"topic": "x"}) == conference.call_id
        assert await backend.callout_number(odd, "+14155550101") == conference.call_id
    assert {m.conference_id for m in conference.received} == {odd}
    assert {m.application_key for m in conference.received} == {app.key}
    kinds = [getattr(m, "command", None) for m in conference.received]
    assert kinds == [None, 1, 2, 3, 3, None, None]
    assert conference.received[-2].user_id == "bob"
    assert conference.received[-1].phone_number == "+14155550101"


async def test_the_backend_client_raises_the_problems_code_and_reason(
    stack: Stack, app: App, conference: ConferenceResponder
) -> None:
    async with BackendClient(stack.url(), app.key, app.secret) as backend:
        with pytest.raises(SdkError) as info:
            await backend.conference("nobody here")
        assert info.value.code == "NOT_FOUND"
        assert "'nobody here' has no participants" in info.value.message
        with pytest.raises(SdkError) as info:
            await backend.conference("x" * 65)  # refused before sending
        assert info.value.code == "INVALID_CONFERENCE_ID"
    other_secret = base64.b64encode(b"0123456789abcdef").decode()
    async with BackendClient(stack.url(), app.key, other_secret) as backend:
        with pytest.raises(SdkError) as info:
            await backend.callout_user("r", "bob")
        assert (info.value.code, info.value.message) == ("INVALID_SIGNATURE", NOT_SIGNED)
    assert conference.received == [
        conference_pb2.ConferenceQuery(application_key=app.key, conference_id="nobody here")
    ]


async def test_no_auth_service_is_a_503_and_nothing_reaches_the_conference_service(
    own_nats: EmbeddedNats, stack: Stack, app: App
) -> None:
    """A gateway on a NATS with no auth: signatures cannot be checked, so nothing passes."""
    runtime = await rt.start(
        GatewaySettings(nats_url=own_nats.url, health_port=0, gateway_port=0), gateway_setup
    )
    nc = await nats.connect(own_nats.url)
    responder = ConferenceResponder(nc)
    await responder.start()
    try:
        lone = gateway_of(runtime).url
        headers = sign_rest_request(app.key, app.secret, "GET", room("r"))
        async with stack.http.get(URL(lone + room("r"), encoded=True), headers=headers) as resp:
            answer = await resp.json(content_type=None)
        problem(resp.status, answer, 503, "UNAVAILABLE", "the auth service is not available")
        assert responder.received == []
    finally:
        await responder.stop()
        await nc.close()
        await rt.stop(runtime, drain=False)
