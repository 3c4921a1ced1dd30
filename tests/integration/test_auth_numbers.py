"""Phone numbers in the auth service against real NATS and PostgreSQL: the operator maps a
number to an application user (parley-admin numbers-*), and the sip service's lookup over
the bus (parley.auth.number_lookup) finds whom a call from a phone to it rings."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from parley.v1 import auth_pb2
from parley_protocol import subjects
from parley_protocol.clock import FakeClock
from parley_protocol.errors import ErrorCode
from tests.integration.test_auth_admin import base_env, cli, cli_json
from tests.integration.test_auth_service import AuthEnv, start_env, stop_env


@pytest_asyncio.fixture
async def env(nats_server: Any, database_url: str) -> AsyncIterator[AuthEnv]:
    started = await start_env(nats_server.url, database_url, FakeClock(time.time()))
    try:
        yield started
    finally:
        await stop_env(started)


async def lookup(env: AuthEnv, number: str) -> auth_pb2.NumberLookupResponse:
    found: auth_pb2.NumberLookupResponse = await env.call(
        subjects.AUTH_NUMBER_LOOKUP,
        auth_pb2.NumberLookupRequest(number=number),
        auth_pb2.NumberLookupResponse,
    )
    return found


async def test_a_mapped_number_is_found_remapped_and_removed(
    env: AuthEnv, database_url: str
) -> None:
    shell = base_env(database_url)
    assert not (await lookup(env, "+14155550123")).found
    mapped = await cli_json("numbers-set", "+14155550123", env.app_key, "bob smith.*>", env=shell)
    assert (mapped["number"], mapped["application_key"], mapped["user_id"]) == (
        "+14155550123",
        env.app_key,
        "bob smith.*>",
    )
    found = await lookup(env, "+14155550123")
    assert (found.found, found.application_key, found.user_id) == (
        True,
        env.app_key,
        "bob smith.*>",
    )
    await cli_json("numbers-set", "+14155550123", env.app_key, "carol", env=shell)
    assert (await lookup(env, "+14155550123")).user_id == "carol"
    listed = await cli_json("numbers-list", env=shell)
    assert [n["number"] for n in listed["numbers"]] == ["+14155550123"]
    assert (await cli_json("numbers-remove", "+14155550123", env=shell))["removed"]
    assert not (await lookup(env, "+14155550123")).found
    refused = await env.refused(
        subjects.AUTH_NUMBER_LOOKUP,
        auth_pb2.NumberLookupRequest(number="0800 123"),
        auth_pb2.NumberLookupResponse,
    )
    assert refused.code == ErrorCode.ERROR_CODE_INVALID_PHONE_NUMBER


async def test_bad_number_commands_say_what_is_wrong(env: AuthEnv, database_url: str) -> None:
    shell = base_env(database_url)
    for args, says in (
        (("numbers-set", "555-0123", env.app_key, "bob"), "E.164"),
        (("numbers-set", "+14155550123", "not-a-key", "bob"), "lowercase GUID"),
        (("numbers-set", "+14155550123", env.app_key, "x" * 41), "the limit is 40"),
        (
            ("numbers-set", "+14155550123", "00000000-0000-4000-8000-000000000000", "bob"),
            "no application",
        ),
        (("numbers-remove", "+14155550999"), "is not mapped"),
    ):
        code, _, err = await cli(*args, env=shell)
        assert code == 2 and says in err, (args, err)
