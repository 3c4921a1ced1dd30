"""Access tokens end to end: expiry, and one application's token never reaches another's users."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
import pytest_asyncio

from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_protocol import framing
from parley_protocol.errors import ErrorCode
from tests.support.wire import RawClient, eventually

from .stack import E2EStack, start_stack

TOKEN_TTL = 2


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def short_lived(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: EmbeddedPostgres
) -> AsyncIterator[E2EStack]:
    """A deployment whose tokens live 2 s, on a NATS of its own (its auth must not answer
    the other deployments' requests)."""
    nats = EmbeddedNats(tmp_path_factory.mktemp("nats-short"))
    await nats.start()
    db = await postgres_server.create_database("e2e_short_tokens")
    running = await start_stack(
        tmp_path_factory.mktemp("short"),
        nats.url,
        db,
        gateways=["gateway-a"],
        auth_env={"PARLEY_AUTH_TOKEN_TTL_SECONDS": str(TOKEN_TTL)},
    )
    try:
        yield running
    finally:
        await running.devstack.stop()
        await nats.stop()


async def test_expired_access_token_is_refused(short_lived: E2EStack) -> None:
    token = await short_lived.access_token("late")
    await asyncio.sleep(TOKEN_TTL + 1.5)
    raw = await RawClient.open(short_lived.ws("gateway-a"))
    reply = await raw.send_hello(token, short_lived.app_key, "late")
    assert reply.error.code == ErrorCode.ERROR_CODE_TOKEN_EXPIRED
    await raw.expect_close(framing.CLOSE_UNAUTHENTICATED)
    await raw.close()


async def test_a_live_session_whose_token_lapses_is_closed(short_lived: E2EStack) -> None:
    token = await short_lived.access_token("lapsing")
    raw = await RawClient.open(short_lived.ws("gateway-a"))
    await raw.hello(token, short_lived.app_key, "lapsing")
    reply = await raw.recv(timeout=TOKEN_TTL + 10)
    assert reply.error.code == ErrorCode.ERROR_CODE_TOKEN_EXPIRED
    await raw.expect_close(framing.CLOSE_UNAUTHENTICATED)
    await raw.close()


async def test_token_of_app_a_cannot_open_a_session_as_a_user_of_app_b(
    stack: E2EStack, tmp_path: Path
) -> None:
    account = await stack.admin("create-account", "--name", "other", "--json")
    assert account is not None
    other = await stack.admin(
        "create-app",
        "--account",
        account["account_id"],
        "--name",
        "B",
        "--environment",
        "sandbox",
        "--json",
    )
    assert other is not None
    token_a = await stack.access_token("mallory")
    raw = await RawClient.open(stack.ws("gateway-b"))
    reply = await raw.send_hello(token_a, other["application_key"], "mallory")
    assert reply.error.code == ErrorCode.ERROR_CODE_PERMISSION_DENIED
    await raw.expect_close(framing.CLOSE_FORBIDDEN)
    await raw.close()

    # The same token names its own application and user and nothing else.
    raw = await RawClient.open(stack.ws("gateway-b"))
    reply = await raw.send_hello(token_a, stack.app_key, "victim")
    assert reply.error.code == ErrorCode.ERROR_CODE_PERMISSION_DENIED
    await raw.close()


async def test_signing_key_rotation_logs_nobody_out(stack: E2EStack, tmp_path: Path) -> None:
    old_token = await stack.access_token("rotating")
    live = await RawClient.open(stack.ws("gateway-a"))
    await live.hello(old_token, stack.app_key, "rotating")
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    await stack.admin("rotate-signing-key")

    # New tokens carry the new key (once auth has read it), and a gateway that never saw
    # that key accepts them: auth announced it.
    new_token = old_token

    async def new_key_in_use() -> bool:
        nonlocal new_token
        new_token = await stack.access_token("rotating")
        return bool(jwt.get_unverified_header(new_token)["kid"] != old_kid)

    await eventually(new_key_in_use, what="tokens signed with the new key")
    fresh = await RawClient.open(stack.ws("gateway-b"))
    await fresh.hello(new_token, stack.app_key, "rotating")
    # The live session goes on, and the old token still opens a session until it expires.
    assert (await live.ping()).client_time_ms == 123
    again = await RawClient.open(stack.ws("gateway-b"))
    await again.hello(old_token, stack.app_key, "rotating")
    for raw in (live, fresh, again):
        await raw.close()
