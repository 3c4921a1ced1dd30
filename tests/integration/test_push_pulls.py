"""JobPull (the push senders' open pull requests) against a real NATS server: jobs start as
they come and never beyond the free slots, idle requests are renewed, and a NATS restart or a
deleted consumer is got over without restarting anything."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from parley_devstack.nats import EmbeddedNats
from parley_push import pulls
from parley_push.pulls import JobPull
from tests.support.wire import bounded, eventually

STREAM, CONSUMER = "PULLTEST", "pull-test"


@dataclass
class Jobs:
    """What a JobPull handed over: jobs at work (held until `finish`), and the done ones."""

    pull: JobPull | None = None
    at_work: list[Msg] = field(default_factory=list)
    done: list[bytes] = field(default_factory=list)
    most: int = 0
    missing: list[str] = field(default_factory=list)

    def on_job(self, msg: Msg) -> None:
        self.at_work.append(msg)
        self.most = max(self.most, len(self.at_work))

    async def finish(self, count: int | None = None) -> None:
        assert self.pull is not None
        finishing = self.at_work[: len(self.at_work) if count is None else count]
        for msg in finishing:
            self.at_work.remove(msg)
            await msg.ack()
            self.done.append(msg.data)
            await self.pull.freed()


async def make_assets(nc: NATS) -> None:
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name=STREAM, subjects=["pulltest.>"], storage=StorageType.FILE)
    )
    await make_consumer(nc)


async def make_consumer(nc: NATS) -> None:
    await nc.jetstream().add_consumer(
        STREAM,
        ConsumerConfig(durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT, ack_wait=30),
    )


@pytest_asyncio.fixture
async def own_nats(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """A NATS server of this test's own, which it may kill and start again."""
    server = EmbeddedNats(tmp_path / "nats")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def pulling(
    server: EmbeddedNats, slots: int, **options: Any
) -> AsyncIterator[tuple[NATS, Jobs, JobPull]]:
    """A connection to `server`, the stream and consumer, and a JobPull on them."""
    nc = await nats.connect(server.url, **options)
    await make_assets(nc)
    jobs = Jobs()
    jobs.pull = JobPull(nc, STREAM, CONSUMER, slots, jobs.on_job, jobs.missing.append)
    await jobs.pull.start()
    try:
        yield nc, jobs, jobs.pull
    finally:
        await jobs.pull.stop()
        await nc.close()


async def publish(nc: NATS, count: int, start: int = 0) -> None:
    js = nc.jetstream()
    for i in range(start, start + count):
        await js.publish("pulltest.job", f"job {i}".encode(), stream=STREAM)


@bounded(30)
async def test_jobs_start_as_they_come_and_never_beyond_the_free_slots(
    own_nats: EmbeddedNats,
) -> None:
    async with pulling(own_nats, slots=4) as (nc, jobs, pull):
        await publish(nc, 10)
        await eventually(lambda: _count(jobs.at_work, 4), what="four jobs at work")
        await asyncio.sleep(0.3)  # more would have come by now if the slots allowed
        assert len(jobs.at_work) == 4 and pull.idle_slots == 0
        await jobs.finish(1)  # one slot frees: one more job, after GATHER_SECONDS at most
        await eventually(lambda: _count(jobs.at_work, 4), what="the fifth job")
        while len(jobs.done) < 10:
            await jobs.finish()
            await eventually(
                lambda: _true(len(jobs.at_work) > 0 or len(jobs.done) == 10), what="more jobs"
            )
        assert sorted(jobs.done) == sorted(f"job {i}".encode() for i in range(10))
        assert jobs.most == 4
        await eventually(lambda: _true(pull.idle_slots == 4), what="every slot free again")


@bounded(30)
async def test_an_idle_request_is_renewed_on_its_expiry(
    own_nats: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pulls, "EXPIRES_SECONDS", 0.3)
    async with pulling(own_nats, slots=8) as (nc, jobs, pull):
        await asyncio.sleep(1.2)  # several requests expire (408) and are renewed meanwhile
        await publish(nc, 1)
        await eventually(lambda: _count(jobs.at_work, 1), 2.0, "the job after idling")
        await jobs.finish()
        assert jobs.done == [b"job 0"] and not jobs.missing
        assert pull.requests_lost == 0  # each renewed on its expiry, none given up


@bounded(40)
async def test_a_nats_restart_is_got_over_without_a_restart(
    own_nats: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pulls, "EXPIRES_SECONDS", 0.5)
    monkeypatch.setattr(pulls, "LATE_SECONDS", 0.5)
    options = {"reconnect_time_wait": 0.2, "max_reconnect_attempts": -1}
    async with pulling(own_nats, slots=8, **options) as (nc, jobs, pull):
        await publish(nc, 2)
        await eventually(lambda: _count(jobs.at_work, 2), what="the jobs before the restart")
        await jobs.finish()
        await nc.flush()
        assert own_nats.kill()  # the open request dies with the server
        await asyncio.sleep(0.5)
        await own_nats.start()  # file storage: the stream and the consumer are still there
        await eventually(lambda: _true(nc.is_connected), 10.0, "the reconnection")
        await publish(nc, 3, start=2)
        await eventually(lambda: _count(jobs.at_work, 3), 10.0, "the jobs after the restart")
        assert pull.requests_lost >= 1  # the request the killed server had
        await jobs.finish()
        # At least once: an acknowledgement the killed server had not stored yet is given out
        # again (the senders' providers take a push twice with its collapse id).
        assert set(jobs.done) == {f"job {i}".encode() for i in range(5)}


@bounded(30)
async def test_a_deleted_consumer_is_reported_missing_and_jobs_flow_once_it_is_back(
    own_nats: EmbeddedNats,
) -> None:
    async with pulling(own_nats, slots=8) as (nc, jobs, _):
        await asyncio.sleep(0.1)  # the request is open on the server
        await nc.jetstream().delete_consumer(STREAM, CONSUMER)
        await eventually(lambda: _true(bool(jobs.missing)), what="the consumer reported missing")
        assert CONSUMER in jobs.missing[0]
        await make_consumer(nc)
        await publish(nc, 1)
        await eventually(lambda: _count(jobs.at_work, 1), 5.0, "the job once it is back")
        await jobs.finish()
        assert jobs.done == [b"job 0"]


async def _count(items: list[Msg], n: int) -> bool:
    return len(items) >= n


async def _true(value: bool) -> bool:
    return value
