"""Token expiry at the gateway, against an auth service issuing 2-second tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest_asyncio

from parley_devstack.nats import EmbeddedNats
from parley_protocol import framing
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import client
from tests.integration.gateway_stack import Stack, start_stack


@pytest_asyncio.fixture
async def stack(nats_server: EmbeddedNats, database_url: str) -> AsyncIterator[Stack]:
    started = await start_stack(
        nats_server.url, database_url, token_ttl_seconds=2, hello_timeout_seconds=1.0
    )
    try:
        yield started
    finally:
        await started.close()


async def test_expired_tokens_end_sessions_unless_refreshed_and_open_none(stack: Stack) -> None:
    app = await stack.create_app()
    registered = await stack.register(app, "judy")
    token = registered["token"]["token"]
    lapsing = await stack.connect()
    first = await lapsing.hello(token, app.key, "judy")
    refreshing = await stack.signed_in(app, "judy")
    await asyncio.sleep(1.05)  # a token issued now expires at least a second later

    status, reply = await stack.post(
        "/v1/token",
        {"application_key": app.key, "user_id": "judy", "credential": registered["credential"]},
    )
    assert status == 200, reply
    accepted = await refreshing.request(
        refresh_token=client.RefreshToken(access_token=reply["token"]["token"])
    )
    assert accepted.token_accepted.token_expires_at_ms > first.token_expires_at_ms

    # The sweep closes the session whose token lapsed, not the refreshed one.
    error = await lapsing.expect_error(ErrorCode.ERROR_CODE_TOKEN_EXPIRED)
    assert "RefreshToken" in error.reason
    await lapsing.expect_close(framing.CLOSE_UNAUTHENTICATED)
    assert time.time() * 1000 >= first.token_expires_at_ms
    assert (await refreshing.ping()).client_time_ms == 123

    # The lapsed token opens no new session.
    late = await stack.connect()
    seq = await late.send(
        hello=client.Hello(access_token=token, application_key=app.key, user_id="judy")
    )
    await late.expect_error(ErrorCode.ERROR_CODE_TOKEN_EXPIRED, reply_to=seq)
    await late.expect_close(framing.CLOSE_UNAUTHENTICATED)
    await refreshing.close()
