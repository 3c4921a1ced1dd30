"""Every kind of bad frame gets its specific error and close code; others keep being served."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from parley_client import ParleyClient
from parley_protocol import framing
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import client as pb
from tests.support.wire import RawClient

from .stack import E2EStack, make_client


@pytest_asyncio.fixture(loop_scope="session")
async def bystander(stack: E2EStack, tmp_path: Path) -> AsyncIterator[ParleyClient]:
    """A well-behaved client on the same gateway; it must keep working throughout."""
    client = make_client(stack, "bystander", tmp_path, gateways=["gateway-a"])
    await client.start()
    client.start_listening_on_active_connection()
    yield client
    assert client.is_started
    assert (await client.presence(["bystander"]))["bystander"].online
    await client.terminate()


async def session(stack: E2EStack, user: str = "raw") -> tuple[RawClient, str]:
    token = await stack.access_token(user)
    return await RawClient.open(stack.ws("gateway-a")), token


async def signed_in(stack: E2EStack, user: str = "raw") -> RawClient:
    raw, token = await session(stack, user)
    await raw.hello(token, stack.app_key, user)
    return raw


async def test_garbage_frame(stack: E2EStack, bystander: ParleyClient) -> None:
    raw = await signed_in(stack)
    await raw.send_raw(b"\xff\xfe\xfd not protobuf")
    reply = await raw.recv()
    assert reply.error.code == ErrorCode.ERROR_CODE_BAD_FRAME
    await raw.expect_close(framing.CLOSE_BAD_FRAME)
    await raw.close()
    assert bystander.is_started


async def test_text_frame(stack: E2EStack, bystander: ParleyClient) -> None:
    raw = await signed_in(stack)
    await raw.send_raw('{"hello": {}}')
    reply = await raw.recv()
    assert reply.error.code == ErrorCode.ERROR_CODE_BAD_FRAME
    assert "binary" in reply.error.reason
    await raw.expect_close(framing.CLOSE_BAD_FRAME)
    await raw.close()


async def test_oversized_frame(stack: E2EStack, bystander: ParleyClient) -> None:
    raw = await signed_in(stack)
    await raw.send_raw(b"\x00" * (framing.MAX_FRAME_BYTES + 1))
    reply = await raw.recv()
    assert reply.error.code == ErrorCode.ERROR_CODE_FRAME_TOO_LARGE
    assert str(framing.MAX_FRAME_BYTES) in reply.error.reason
    await raw.expect_close(framing.CLOSE_TOO_LARGE)
    await raw.close()


async def test_frame_before_hello(stack: E2EStack, bystander: ParleyClient) -> None:
    raw, _ = await session(stack)
    seq = await raw.send(ping=pb.Ping(client_time_ms=1))
    reply = await raw.recv()
    assert reply.error.code == ErrorCode.ERROR_CODE_WRONG_STATE
    assert reply.reply_to == seq
    await raw.expect_close(framing.CLOSE_UNAUTHENTICATED)
    await raw.close()


async def test_second_hello_and_old_sequence_are_refused_but_the_session_lives(
    stack: E2EStack, bystander: ParleyClient
) -> None:
    raw, token = await session(stack)
    await raw.hello(token, stack.app_key, "raw")
    seq = await raw.send(hello=pb.Hello(access_token=token))
    reply = await raw.recv()
    assert reply.error.code == ErrorCode.ERROR_CODE_WRONG_STATE and reply.reply_to == seq

    await raw.send(seq=1, ping=pb.Ping(client_time_ms=5))  # not above the last
    reply = await raw.recv()
    assert reply.error.code == ErrorCode.ERROR_CODE_BAD_SEQUENCE

    await raw.send(welcome=pb.Welcome())  # a server-only message
    reply = await raw.recv()
    assert reply.error.code == ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE

    await raw.send()  # nothing in it
    reply = await raw.recv()
    assert reply.error.code == ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE

    seq = await raw.send(ping=pb.Ping(client_time_ms=7))
    reply = await raw.recv()
    assert reply.WhichOneof("body") == "pong" and reply.reply_to == seq
    assert reply.pong.client_time_ms == 7
    await raw.close()


async def test_forged_token_is_refused(stack: E2EStack, bystander: ParleyClient) -> None:
    raw, token = await session(stack)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[::-1]}"
    reply = await raw.send_hello(forged, stack.app_key, "raw")
    assert reply.error.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED
    await raw.expect_close(framing.CLOSE_UNAUTHENTICATED)
    await raw.close()
