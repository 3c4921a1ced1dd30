"""The gateway's HTTP API and WebSocket session, against an in-process auth service."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families

from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_gateway.http_api import MAX_BODY_BYTES
from parley_gateway.metrics import frames
from parley_protocol import framing, signatures
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import client
from parley_service import runtime as rt
from tests.integration.gateway_stack import App, RawClient, Stack, module_stack

E = ErrorCode


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> AsyncIterator[Stack]:
    async with module_stack(
        nats_server.url, postgres_server, "test_gw", hello_timeout_seconds=1.0
    ) as started:
        yield started


# HTTP -----------------------------------------------------------------------------------


async def test_register_with_both_schemes_get_a_token_and_open_a_session(
    stack: Stack, app: App
) -> None:
    by_server = await stack.register(app, "alice", sequence=7)
    assert set(by_server) == {"credential", "token"}
    assert uuid.UUID(by_server["credential"]["instance_id"])
    assert by_server["credential"]["instance_secret"]
    assert int(by_server["token"]["expires_at_ms"]) > 0  # int64: a JSON string
    self_signed = await stack.register(app, "alice")
    assert self_signed["credential"]["instance_id"] != by_server["credential"]["instance_id"]

    status, reply = await stack.post(
        "/v1/token",
        {"application_key": app.key, "user_id": "alice", "credential": by_server["credential"]},
    )
    assert status == 200, reply
    token = reply["token"]["token"]

    c = await stack.connect()
    welcome = await c.hello(token, app.key, "alice")
    assert welcome.gateway_id == stack.gateway().gateway_id
    assert welcome.session_id in stack.gateway().sessions
    assert welcome.heartbeat_interval_ms == 30_000
    assert welcome.token_expires_at_ms == int(reply["token"]["expires_at_ms"])
    assert abs(welcome.server_time_ms - welcome.token_expires_at_ms + 900_000) < 5_000
    pong = await c.ping()
    assert pong.client_time_ms == 123 and pong.server_time_ms >= welcome.server_time_ms
    await c.send(goodbye=client.Goodbye(reason="done"))
    await c.expect_close(framing.CLOSE_NORMAL)
    assert welcome.session_id not in stack.gateway().sessions


async def test_jwks_is_served_from_auth(stack: Stack) -> None:
    async with stack.http.get(stack.url() + "/v1/jwks") as resp:
        assert resp.status == 200
        jwks = await resp.json()
    assert jwks["keys"] and {k["kty"] for k in jwks["keys"]} == {"OKP"}
    assert {k["alg"] for k in jwks["keys"]} == {"EdDSA"}


@pytest.mark.parametrize(
    ("body", "status", "code", "detail"),
    [
        (b"{not json", 400, "INVALID_ARGUMENT", "not JSON"),
        (b"", 400, "INVALID_ARGUMENT", "empty"),
        (b"[1, 2]", 400, "INVALID_ARGUMENT", "must be a JSON object, not list"),
        ({"user_id": "a", "colour": "red"}, 400, "INVALID_ARGUMENT", 'no field named "colour"'),
        ({"user_id": 5}, 400, "INVALID_ARGUMENT", "user_id"),
        ({"scheme": "REGISTRATION_SCHEME_MAGIC"}, 400, "INVALID_ARGUMENT", "scheme"),
        ({"sequence": "-1"}, 400, "INVALID_ARGUMENT", "sequence"),
        (b"x" * (MAX_BODY_BYTES + 1), 413, "PAYLOAD_TOO_LARGE", "over the limit"),
        (b"[" * 3000 + b"]" * 3000, 400, "INVALID_ARGUMENT", "nested too deeply"),
        (b'{"user_id": ' + b"[" * 3000 + b"]" * 3000 + b"}", 400, "INVALID_ARGUMENT", "nested"),
    ],
)
async def test_bad_register_bodies_get_a_specific_problem(
    stack: Stack, body: Any, status: int, code: str, detail: str
) -> None:
    got_status, problem = await stack.post("/v1/register", body)
    assert (got_status, problem["code"]) == (status, code), problem
    assert detail in problem["detail"], problem
    assert problem["status"] == status


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/v1/jwks", "GET"),
        ("GET", "/v1/register", "POST"),
        ("PUT", "/v1/token", "POST"),
        ("POST", "/v1/connect", "GET"),
        ("POST", "/v1/conferences/id/standup", "DELETE"),
    ],
)
async def test_a_wrong_method_is_a_405_problem(
    stack: Stack, method: str, path: str, allowed: str
) -> None:
    async with stack.http.request(method, stack.url() + path) as resp:
        assert resp.status == 405
        assert resp.content_type == "application/problem+json"
        assert allowed in resp.headers["Allow"]
        problem = await resp.json(content_type=None)
    assert (problem["code"], problem["status"]) == ("INVALID_ARGUMENT", 405)
    assert problem["detail"].startswith(f"method not allowed: {method} {path}"), problem


async def test_an_unknown_path_is_a_404_problem(stack: Stack) -> None:
    async with stack.http.get(stack.url() + "/v2/nothing") as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
        assert (await resp.json(content_type=None))["code"] == "NOT_FOUND"


async def test_auth_errors_come_back_as_problems(stack: Stack, app: App) -> None:
    async with stack.http.post(
        stack.url() + "/v1/register",
        json={
            "application_key": app.key,
            "user_id": "mallory",
            "scheme": "REGISTRATION_SCHEME_APPLICATION_SERVER",
            "signature": "AAAA",
            "sequence": "1",
        },
    ) as resp:
        assert resp.status == 401
        assert resp.content_type == "application/problem+json"
        assert (await resp.json(content_type=None))["code"] == "INVALID_SIGNATURE"
    await stack.register(app, "bob", sequence=3)
    status, problem = await stack.post(
        "/v1/register",
        {
            "application_key": app.key,
            "user_id": "bob",
            "scheme": "REGISTRATION_SCHEME_APPLICATION_SERVER",
            "signature": signatures.registration_signature("bob", app.key, 3, app.secret),
            "sequence": "3",
        },
    )
    assert (status, problem["code"]) == (409, "SEQUENCE_REUSED"), problem
    status, problem = await stack.post(
        "/v1/register",
        {
            "application_key": str(uuid.uuid4()),
            "user_id": "bob",
            "scheme": "REGISTRATION_SCHEME_APPLICATION_SERVER",
            "signature": "x",
            "sequence": "4",
        },
    )
    assert (status, problem["code"]) == (404, "UNKNOWN_APPLICATION"), problem
    status, problem = await stack.post("/v1/nothing-here", {})
    assert (status, problem["code"]) == (404, "NOT_FOUND")


# Bad frames -----------------------------------------------------------------------------

OVERSIZED = b"\x00" * (framing.MAX_FRAME_BYTES + 1)
# Field 50 is no message this protocol version knows (a newer client's).
FUTURE_BODY = client.Envelope(seq=1).SerializeToString() + b"\x92\x03\x00"


async def _empty(c: RawClient) -> int:
    return await c.send()


async def _server_only(c: RawClient) -> int:
    return await c.send(pong=client.Pong(client_time_ms=1))


async def _future_body(c: RawClient) -> int:
    c.seq += 1
    raw = client.Envelope(seq=c.seq).SerializeToString() + b"\x92\x03\x00"
    await c.ws.send_bytes(raw)
    return c.seq


async def _ping(c: RawClient) -> int:
    return await c.send(ping=client.Ping())


async def _text(c: RawClient) -> int:
    await c.ws.send_str("hello?")
    return 0


async def _garbage(c: RawClient) -> int:
    await c.ws.send_bytes(b"\xff\xff\xff\xff\x0f garbage")
    return 0


async def _oversized(c: RawClient) -> int:
    await c.ws.send_bytes(OVERSIZED)
    return 0


# (name, say Hello first, send the frame, error code, close code or None: session goes on)
BAD_FRAMES = [
    ("text before hello", False, _text, E.ERROR_CODE_BAD_FRAME, framing.CLOSE_BAD_FRAME),
    ("text after hello", True, _text, E.ERROR_CODE_BAD_FRAME, framing.CLOSE_BAD_FRAME),
    ("undecodable", True, _garbage, E.ERROR_CODE_BAD_FRAME, framing.CLOSE_BAD_FRAME),
    ("oversized", True, _oversized, E.ERROR_CODE_FRAME_TOO_LARGE, framing.CLOSE_TOO_LARGE),
    (
        "empty before hello",
        False,
        _empty,
        E.ERROR_CODE_UNKNOWN_MESSAGE,
        framing.CLOSE_UNAUTHENTICATED,
    ),
    ("empty after hello", True, _empty, E.ERROR_CODE_UNKNOWN_MESSAGE, None),
    ("server-only after hello", True, _server_only, E.ERROR_CODE_UNKNOWN_MESSAGE, None),
    ("future body after hello", True, _future_body, E.ERROR_CODE_UNKNOWN_MESSAGE, None),
    (
        "server-only first",
        False,
        _server_only,
        E.ERROR_CODE_UNKNOWN_MESSAGE,
        framing.CLOSE_UNAUTHENTICATED,
    ),
    ("ping first", False, _ping, E.ERROR_CODE_WRONG_STATE, framing.CLOSE_UNAUTHENTICATED),
]


@pytest.mark.parametrize(
    ("signed_in", "send", "code", "close"),
    [case[1:] for case in BAD_FRAMES],
    ids=[case[0] for case in BAD_FRAMES],
)
async def test_each_bad_frame_gets_its_error_and_close_code_and_others_keep_working(
    stack: Stack, app: App, signed_in: bool, send: Any, code: int, close: int | None
) -> None:
    bystander = await stack.signed_in(app, "bystander")
    c = await stack.signed_in(app, "troublemaker") if signed_in else await stack.connect()
    reply_to = await send(c)
    error = await c.expect_error(code, reply_to=reply_to)
    assert error.reason
    if close is None:
        pong = await c.ping()  # the session goes on
        assert pong.client_time_ms == 123
        await c.close()
    else:
        await c.expect_close(close)
    assert (await bystander.ping()).client_time_ms == 123
    await bystander.close()


async def test_second_hello_and_stale_seq_are_refused_but_the_session_goes_on(
    stack: Stack, app: App
) -> None:
    c = await stack.signed_in(app, "carol")
    token = await stack.token(app, "carol")
    seq = await c.send(
        hello=client.Hello(access_token=token, application_key=app.key, user_id="carol")
    )
    await c.expect_error(E.ERROR_CODE_WRONG_STATE, reply_to=seq)
    await c.ping()
    for stale in (c.seq, c.seq - 1, 0):
        await c.send(seq=stale, ping=client.Ping())
        await c.expect_error(E.ERROR_CODE_BAD_SEQUENCE, reply_to=stale)
    c.seq += 10  # gaps are fine: only order matters
    assert (await c.ping()).client_time_ms == 123
    await c.close()


async def test_a_frame_aiohttp_refuses_outright_closes_with_too_large(stack: Stack) -> None:
    c = await stack.connect()
    await c.ws.send_bytes(b"\x00" * (framing.MAX_FRAME_BYTES * 4 + 1))
    msg = await c.ws.receive(5)
    if msg.type == aiohttp.WSMsgType.BINARY:  # our error frame may come first
        msg = await c.ws.receive(5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == framing.CLOSE_TOO_LARGE


async def test_no_hello_in_time_closes_with_timeout(stack: Stack) -> None:
    c = await stack.connect()
    await c.expect_error(E.ERROR_CODE_HEARTBEAT_TIMEOUT)
    await c.expect_close(framing.CLOSE_TIMEOUT)


async def test_the_gateway_pings_idle_sessions_and_closes_one_that_answers_none(
    stack: Stack, app: App
) -> None:
    """A session the gateway has heard nothing from for an interval gets a WebSocket Ping.
    One that answers (aiohttp's Pong, as it reads) stays however long it sends nothing of
    its own; one that reads the Pings and never answers is closed after 2.5 intervals."""
    await stack.add_gateway(heartbeat_interval_ms=400)
    index = len(stack.gateways) - 1
    try:
        deaf = await stack.signed_in(app, "deaf", index=index, autoping=False)
        idle = await stack.signed_in(app, "idle", index=index)
        assert idle.welcome.gateway_pings
        sent = _frames("out", "websocket_ping")
        with pytest.raises(TimeoutError):  # 6 intervals: only Pings come, answered unseen
            async with asyncio.timeout(2.4):
                await idle.ws.receive()
        assert _frames("out", "websocket_ping") - sent >= 4  # both sessions were pinged
        await deaf.expect_error(E.ERROR_CODE_HEARTBEAT_TIMEOUT)
        await deaf.expect_close(framing.CLOSE_TIMEOUT)
        assert deaf.pings_unanswered >= 1
        assert (await idle.ping()).client_time_ms == 123  # still signed in
        await idle.close()
    finally:
        await rt.stop(stack.gateways.pop(index), drain=False)


def _frames(direction: str, kind: str) -> int:
    return frames(direction, kind).value


# Tokens ---------------------------------------------------------------------------------


async def test_token_of_one_app_cannot_open_a_session_for_another_apps_user(
    stack: Stack, app: App
) -> None:
    other = await stack.create_app()
    token_a = await stack.token(app, "dave")
    c = await stack.connect()
    seq = await c.send(
        hello=client.Hello(access_token=token_a, application_key=other.key, user_id="dave")
    )
    error = await c.expect_error(E.ERROR_CODE_PERMISSION_DENIED, reply_to=seq)
    assert "application" in error.reason
    await c.expect_close(framing.CLOSE_FORBIDDEN)
    c = await stack.connect()
    await c.send(hello=client.Hello(access_token=token_a, application_key=app.key, user_id="eve"))
    await c.expect_error(E.ERROR_CODE_PERMISSION_DENIED)
    await c.expect_close(framing.CLOSE_FORBIDDEN)


def _forged(kid: str, alg: str = "EdDSA", **claims: Any) -> str:
    payload: dict[str, Any] = {"iss": "parley-auth", "aud": "parley", "sub": "u", "app": "a"}
    payload["env"] = "sandbox"
    payload.update({"iid": "i", "iat": 1, "exp": 4_000_000_000, **claims})
    if alg == "HS256":
        return jwt.encode(payload, "k" * 32, algorithm="HS256", headers={"kid": kid})
    key = Ed25519PrivateKey.generate()
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid})


async def test_bad_tokens_are_unauthenticated(stack: Stack, app: App) -> None:
    async with stack.http.get(stack.url() + "/v1/jwks") as resp:
        real_kid = json.loads(await resp.text())["keys"][0]["kid"]
    for token in (
        "",
        "not-a-jwt",
        _forged(real_kid, alg="HS256", sub="frank", app=app.key),
        _forged(real_kid, sub="frank", app=app.key),  # right kid, wrong key
    ):
        c = await stack.connect()
        await c.send(
            hello=client.Hello(access_token=token, application_key=app.key, user_id="frank")
        )
        await c.expect_error(E.ERROR_CODE_UNAUTHENTICATED)
        await c.expect_close(framing.CLOSE_UNAUTHENTICATED)
    # A key id unknown moments after a JWKS fetch may be a rotation still on its way, or a
    # forgery: "not now" (try again later), never a session.
    c = await stack.connect()
    forged = _forged("no-such-kid", sub="frank", app=app.key)
    await c.send(hello=client.Hello(access_token=forged, application_key=app.key, user_id="frank"))
    await c.expect_error(E.ERROR_CODE_UNAVAILABLE)
    await c.expect_close(framing.CLOSE_TRY_AGAIN_LATER)


async def test_refresh_token_extends_the_session_only_for_the_same_user(
    stack: Stack, app: App
) -> None:
    c = await stack.signed_in(app, "grace")
    reply = await c.request(
        refresh_token=client.RefreshToken(access_token=await stack.token(app, "grace"))
    )
    assert reply.token_accepted.token_expires_at_ms > 0
    seq = await c.send(refresh_token=client.RefreshToken(access_token="garbage"))
    await c.expect_error(E.ERROR_CODE_UNAUTHENTICATED, reply_to=seq)
    await c.ping()  # a bad refresh leaves the current token in force
    await c.send(refresh_token=client.RefreshToken(access_token=await stack.token(app, "heidi")))
    await c.expect_error(E.ERROR_CODE_PERMISSION_DENIED)
    await c.expect_close(framing.CLOSE_FORBIDDEN)


async def test_invalid_hello_fields_are_refused(stack: Stack, app: App) -> None:
    token = await stack.token(app, "ivan")
    for app_key, user_id, code in (
        ("NOT-A-KEY", "ivan", E.ERROR_CODE_INVALID_APPLICATION_KEY),
        (app.key, "x" * 41, E.ERROR_CODE_INVALID_USER_ID),
        (app.key, "", E.ERROR_CODE_INVALID_USER_ID),
    ):
        c = await stack.connect()
        await c.send(
            hello=client.Hello(access_token=token, application_key=app_key, user_id=user_id)
        )
        await c.expect_error(code)
        await c.expect_close(framing.CLOSE_UNAUTHENTICATED)


async def test_a_plain_get_on_connect_is_a_problem(stack: Stack) -> None:
    async with stack.http.get(stack.url() + "/v1/connect") as resp:
        assert resp.status == 400
        assert (await resp.json(content_type=None))["code"] == "INVALID_ARGUMENT"


async def _metrics(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with stack.http.get(f"http://127.0.0.1:{stack.gateways[0].health.port}/metrics") as r:
        text = await r.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("parley_gateway_")
    }


async def test_metrics_count_connections_frames_and_errors(stack: Stack, app: App) -> None:
    hello_in = ("parley_gateway_frames_total", (("direction", "in"), ("type", "hello")))
    welcome_out = ("parley_gateway_frames_total", (("direction", "out"), ("type", "welcome")))
    bad_seq = ("parley_gateway_errors_total", (("code", "BAD_SEQUENCE"),))
    before = await _metrics(stack)
    c = await stack.signed_in(app, "metered")
    await c.send(seq=1, ping=client.Ping())
    await c.expect_error(E.ERROR_CODE_BAD_SEQUENCE)
    after = await _metrics(stack)
    assert after[hello_in] == before.get(hello_in, 0) + 1
    assert after[welcome_out] == before.get(welcome_out, 0) + 1
    assert after[bad_seq] == before.get(bad_seq, 0) + 1
    assert after[("parley_gateway_connections", ())] >= 1
    await c.close()
