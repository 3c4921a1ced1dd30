"""`parley.auth.verify_request` (app backends' REST signatures) on a real auth replica,
NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from parley_auth import accounts
from parley_auth.request_signatures import NOT_SIGNED
from parley_protocol import signatures, subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.pb import auth
from parley_service.secrets_box import SecretBox
from tests.integration.test_auth_service import AuthEnv, start_env, stop_env

BOX = SecretBox(bytes(range(100, 132)))  # test_auth_service's master key
TO_SIGN = signatures.rest_string_to_sign(
    "GET", "", "", "2026-11-30T18:00:00Z", "/v1/conferences/id/room%201"
)


@pytest_asyncio.fixture
async def env(nats_server: Any, database_url: str) -> AsyncIterator[AuthEnv]:
    started = await start_env(nats_server.url, database_url)
    try:
        yield started
    finally:
        await stop_env(started)


def signed(key: str, secret: str, to_sign: str = TO_SIGN) -> auth.VerifyRequestSignature:
    return auth.VerifyRequestSignature(
        application_key=key,
        string_to_sign=to_sign,
        signature=signatures.rest_signature(secret, to_sign),
    )


async def verify(env: AuthEnv, req: auth.VerifyRequestSignature) -> auth.RequestSignatureVerified:
    reply: auth.RequestSignatureVerified = await env.call(
        subjects.AUTH_VERIFY_REQUEST, req, auth.RequestSignatureVerified
    )
    return reply


async def refused(env: AuthEnv, req: auth.VerifyRequestSignature) -> ParleyError:
    return await env.refused(subjects.AUTH_VERIFY_REQUEST, req, auth.RequestSignatureVerified)


async def test_a_request_signed_with_the_application_secret_verifies(env: AuthEnv) -> None:
    reply = await verify(env, signed(env.app_key, env.app_secret))
    assert reply.application_key == env.app_key
    assert reply.environment == "sandbox"


async def test_a_wrong_signature_and_an_unknown_application_get_the_same_answer(
    env: AuthEnv,
) -> None:
    other_secret = base64.b64encode(b"0123456789abcdef").decode()
    wrong_secret = await refused(env, signed(env.app_key, other_secret))
    tampered = signed(env.app_key, env.app_secret)
    tampered.string_to_sign = TO_SIGN.replace("room%201", "room%202")
    wrong_string = await refused(env, tampered)
    unknown = await refused(env, signed(str(uuid.uuid4()), env.app_secret))
    for err in (wrong_secret, wrong_string, unknown):
        assert err.code == ErrorCode.ERROR_CODE_INVALID_SIGNATURE
        assert (err.reason, err.field) == (NOT_SIGNED, "signature")


async def test_malformed_requests_are_invalid_arguments(env: AuthEnv) -> None:
    good = signed(env.app_key, env.app_secret)
    cases: list[tuple[dict[str, str], str]] = [
        ({"application_key": "NOT-A-GUID"}, "application_key"),
        ({"application_key": ""}, "application_key"),
        ({"string_to_sign": ""}, "string_to_sign"),
        ({"string_to_sign": "x" * (16 * 1024 + 1)}, "string_to_sign"),
        ({"signature": ""}, "signature"),
        ({"signature": "not base64!"}, "signature"),
        ({"signature": base64.b64encode(b"short").decode()}, "signature"),
    ]
    for change, field in cases:
        req = auth.VerifyRequestSignature()
        req.CopyFrom(good)
        for name, value in change.items():
            setattr(req, name, value)
        err = await refused(env, req)
        assert err.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT, change
        assert err.field == field, change
    raw = await env.nc.request(subjects.AUTH_VERIFY_REQUEST, b"\xff\xff\xff", timeout=5)
    assert raw.headers and raw.headers.get("Parley-Error") == "INVALID_ARGUMENT"


async def test_an_application_of_the_other_environment_learns_so_only_when_signed(
    env: AuthEnv,
) -> None:
    production = await accounts.create_application(
        env.db, BOX, env.account_id, "Acme live", "production", env.clock
    )
    key = production.application.key
    err = await refused(env, signed(key, production.secret))
    assert err.code == ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT
    assert "production" in err.reason and "sandbox" in err.reason
    err = await refused(env, signed(key, env.app_secret))
    assert err.code == ErrorCode.ERROR_CODE_INVALID_SIGNATURE and err.reason == NOT_SIGNED


async def test_a_rotated_secret_stops_verifying_at_once_and_the_new_one_verifies(
    env: AuthEnv,
) -> None:
    old = env.app_secret
    await verify(env, signed(env.app_key, old))  # the application (and secret) is now cached
    rotated = await accounts.rotate_application_secret(env.db, BOX, env.app_key, env.clock)
    deadline = time.monotonic() + 5
    while True:
        try:
            await verify(env, signed(env.app_key, old))
        except ParleyError as err:
            assert err.code == ErrorCode.ERROR_CODE_INVALID_SIGNATURE
            break
        assert time.monotonic() < deadline, "the old secret still verifies after rotation"
        await asyncio.sleep(0.02)
    reply = await verify(env, signed(env.app_key, rotated.secret))
    assert reply.application_key == env.app_key
