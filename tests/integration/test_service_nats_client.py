"""The services' NATS client on a real server: commands queued within the write gap go in
one write, in order; an idle connection writes at once; a flush is answered only after the
commands queued before it (a subscription is in place when flush returns)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest_asyncio
from nats.aio.client import Client as NATS

from parley_devstack.nats import EmbeddedNats
from parley_service.nats_client import PacedNats
from tests.support.wire import bounded, eventually

GAP = 0.05


@pytest_asyncio.fixture
async def paced(nats_server: EmbeddedNats) -> AsyncIterator[tuple[PacedNats, list[int]]]:
    """A connection with a 50 ms gap, and the number of commands of each of its writes."""
    nc = PacedNats(GAP)
    await nc.connect(nats_server.url)
    writes: list[int] = []
    transport: Any = nc._transport
    write_lines = transport.writelines

    def counted(payload: list[bytes]) -> None:
        writes.append(len(payload))
        write_lines(payload)

    transport.writelines = counted
    try:
        yield nc, writes
    finally:
        await nc.close()


@bounded(20)
async def test_commands_queued_within_the_gap_go_in_one_write_in_order(
    nats_server: EmbeddedNats, paced: tuple[PacedNats, list[int]], bus: NATS
) -> None:
    nc, writes = paced
    got: list[bytes] = []
    sub = await bus.subscribe("paced.test", cb=_append(got))
    await bus.flush()
    began = time.monotonic()
    await nc.publish("paced.test", b"0")  # idle: written at once
    await asyncio.sleep(0.01)
    assert writes == [1] and time.monotonic() - began < GAP
    for i in range(1, 51):  # the flusher gets a turn between any two of them
        await nc.publish("paced.test", str(i).encode())
        await asyncio.sleep(0)
    await eventually(lambda: _equal(len(got), 51), 5, "every message")
    assert got == [str(i).encode() for i in range(51)]
    assert sum(writes) == 51 and len(writes) <= 3, writes
    await sub.unsubscribe()


@bounded(20)
async def test_a_flush_is_answered_after_a_subscription_queued_before_it(
    paced: tuple[PacedNats, list[int]], bus: NATS
) -> None:
    nc, _ = paced
    await nc.publish("paced.other", b"x")  # the gap starts now
    got: list[bytes] = []
    await nc.subscribe("paced.flush", cb=_append(got))
    began = time.monotonic()
    await nc.flush()
    assert time.monotonic() - began < 5
    await bus.publish("paced.flush", b"after the flush")  # another connection
    await eventually(lambda: _equal(len(got), 1), 5, "the message")
    assert got == [b"after the flush"]


@bounded(20)
async def test_no_gap_writes_on_every_turn(nats_server: EmbeddedNats) -> None:
    nc = await nats.connect(nats_server.url)
    unpaced = PacedNats(0.0)
    await unpaced.connect(nats_server.url)
    try:
        got: list[bytes] = []
        await nc.subscribe("paced.none", cb=_append(got))
        await nc.flush()
        for i in range(5):
            await unpaced.publish("paced.none", str(i).encode())
        await unpaced.flush()
        await eventually(lambda: _equal(len(got), 5), 5, "every message")
        assert got == [b"0", b"1", b"2", b"3", b"4"]
    finally:
        await unpaced.close()
        await nc.close()


def _append(into: list[bytes]) -> Any:
    async def on_message(msg: Any) -> None:
        into.append(msg.data)

    return on_message


async def _equal(a: int, b: int) -> bool:
    return a == b
