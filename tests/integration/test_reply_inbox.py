"""One reply inbox per connection, on a real NATS server: bus requests, acknowledged
JetStream publishes and their errors, all through one subscription; late replies dropped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from parley.v1 import auth_pb2
from parley_devstack.nats import EmbeddedNats
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.acked import AckedPublisher
from parley_service.bus import Unreachable, request
from parley_service.replies import ReplyInbox
from tests.support.wire import bounded


def _lookup(key: str) -> auth_pb2.AppLookupRequest:
    return auth_pb2.AppLookupRequest(application_key=key)


@contextlib.asynccontextmanager
async def _connected(server: EmbeddedNats, count: int) -> AsyncIterator[list[NATS]]:
    connections = [await nats.connect(server.url) for _ in range(count)]
    try:
        yield connections
    finally:
        for nc in connections:
            await nc.close()


@bounded(20)
async def test_requests_share_one_inbox_and_each_gets_its_own_reply(
    nats_server: EmbeddedNats,
) -> None:
    async with _connected(nats_server, 2) as (service, caller):

        async def answer(msg: Msg) -> None:
            asked = auth_pb2.AppLookupRequest.FromString(msg.data)
            await asyncio.sleep(0.05 if asked.application_key == "slow" else 0)
            reply = auth_pb2.AppLookupResponse(name=f"for {asked.application_key}")
            await service.publish(msg.reply, reply.SerializeToString())

        await service.subscribe("test.lookup", cb=answer)
        await service.flush()
        subs_before = len(caller._subs)
        replies = await asyncio.gather(
            *(
                request(caller, "test.lookup", _lookup(key), auth_pb2.AppLookupResponse)
                for key in ("slow", "a", "b", "c")
            )
        )
        assert [r.name for r in replies] == ["for slow", "for a", "for b", "for c"]
        inbox = await ReplyInbox.of(caller)
        assert len(caller._subs) - subs_before == 1  # the inbox, subscribed once
        assert inbox.waiting == 0


@bounded(20)
async def test_no_responder_is_unreachable_and_silence_is_a_timeout(
    nats_server: EmbeddedNats,
) -> None:
    async with _connected(nats_server, 2) as (service, caller):
        with pytest.raises(Unreachable, match=r"no service answers test\.nobody"):
            await request(caller, "test.nobody", _lookup("x"), auth_pb2.AppLookupResponse)

        async def silent(msg: Msg) -> None:
            return None

        await service.subscribe("test.silent", cb=silent)
        await service.flush()
        with pytest.raises(ParleyError) as info:
            await request(caller, "test.silent", _lookup("x"), auth_pb2.AppLookupResponse, 0.2)
        assert info.value.code == ErrorCode.ERROR_CODE_TIMEOUT
        assert (await ReplyInbox.of(caller)).waiting == 0


@bounded(20)
async def test_a_reply_after_the_timeout_is_dropped(nats_server: EmbeddedNats) -> None:
    async with _connected(nats_server, 1) as (nc,):
        inbox = await ReplyInbox.of(nc)
        reply, answer = inbox.one(0.1, lambda msg: msg.data)
        with pytest.raises(nats.errors.TimeoutError):
            await answer
        await nc.publish(reply, b"late")
        await nc.flush()
        reply2, answer2 = inbox.one(2.0, lambda msg: msg.data)
        await nc.publish(reply2, b"in time")
        assert await answer2 == b"in time"
        assert inbox.waiting == 0


@bounded(30)
async def test_acknowledged_publishes_are_stored_or_fail_as_jetstream_says(
    nats_server: EmbeddedNats,
) -> None:
    async with _connected(nats_server, 1) as (nc,):
        js = nc.jetstream()
        await js.add_stream(name="ACKED", subjects=["acked.>"], max_msgs_per_subject=1)
        publisher = AckedPublisher(nc, timeout=2.0)
        await publisher.start()
        await publisher.stored("acked.one", b"1", {"x-test": "yes"})
        stored = await js.get_last_msg("ACKED", "acked.one")
        assert stored.data == b"1" and (stored.headers or {}).get("x-test") == "yes"
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await publisher.stored("nostream.one", b"2")
        # A publish the stream refuses (wrong expected last sequence): its API error.
        with pytest.raises(nats.js.errors.APIError):
            await publisher.stored(
                "acked.one", b"3", {"Nats-Expected-Last-Subject-Sequence": "999"}
            )
        assert publisher.waiting == 0
