"""The stream PUSH: managed push jobs, one subject per provider, file storage, a work queue.

A Notify request publishes its jobs here and waits for JetStream's acknowledgement before
it answers, so an accepted notification survives a push replica's crash; the senders
(`senders.py`) share one durable consumer and acknowledge a job only once the provider
answered for good.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from parley.v1 import push_pb2
from parley_protocol import subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_push.metrics import JOBS_ENQUEUED_BY
from parley_push.tokens import provider_name
from parley_service import tracing
from parley_service.acked import AckedPublisher
from parley_service.assets import Consumer, JetStreamAssets, Stream, asset_missing

EXPECTED_STREAM = "Nats-Expected-Stream"

# How long a job a sender holds without a word stays its own before JetStream gives it to
# another sender. A sender at work on a job says so every third of it (a provider request
# may take longer), so a job held by a sender that died goes out again within this time.
ACK_WAIT_SECONDS = 10.0


def stream(replicas: int, max_age_seconds: float) -> Stream:
    return Stream(
        StreamConfig(
            name=subjects.PUSH_STREAM,
            subjects=[subjects.PUSH_JOBS],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=replicas,
            max_age=max_age_seconds,
        )
    )


def consumer(max_attempts: int) -> Consumer:
    return Consumer(
        subjects.PUSH_STREAM,
        ConsumerConfig(
            durable_name=subjects.PUSH_CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ACK_WAIT_SECONDS,
            max_deliver=max_attempts,
            max_ack_pending=20_000,
        ),
    )


class JobQueue:
    def __init__(self, nc: NATS, assets: JetStreamAssets) -> None:
        # Acknowledgements on the connection's reply inbox (a future and a timer a job),
        # not nats-py's `js.publish` (a request, a `wait_for` and a PubAck decoded each).
        self._publisher = AckedPublisher(nc)
        self._assets = assets

    async def publish(self, jobs: list[push_pb2.PushJob]) -> None:
        """Every job is in the stream when this returns; UNAVAILABLE otherwise (retry)."""
        if not jobs:
            return
        await self._publisher.start()
        names = [provider_name(job.provider) for job in jobs]
        # The sender continues the notification's trace; a stream other than PUSH (a
        # subject taken over by another stream) refuses the job.
        headers = tracing.inject({EXPECTED_STREAM: subjects.PUSH_STREAM})
        acked: list[asyncio.Future[None]] = []
        failures: list[BaseException] = []
        for name, job in zip(names, jobs, strict=True):  # all queued before any is waited
            try:
                acked.append(
                    await self._publisher.publish(
                        subjects.push_jobs(name), job.SerializeToString(), headers
                    )
                )
            except Exception as failed:
                failures.append(failed)
        results = await asyncio.gather(*acked, return_exceptions=True)
        failures += [r for r in results if isinstance(r, BaseException)]
        if failures:
            exc = failures[0]
            if isinstance(exc, asyncio.CancelledError):
                raise exc
            if asset_missing(exc):
                self._assets.lost(f"stream {subjects.PUSH_STREAM}")
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNAVAILABLE,
                f"{len(failures)} of {len(jobs)} push jobs cannot be queued now "
                f"({type(exc).__name__}); retry",
            ) from exc
        for name in names:
            JOBS_ENQUEUED_BY(name).inc()
