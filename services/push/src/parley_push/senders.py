"""The senders: take push jobs from the stream PUSH and hand each to its provider.

Every replica pulls from the one durable consumer, so replicas share the jobs and a job
held by a replica that dies goes to another after the ack wait. At most
`push_concurrency` provider requests run at once per replica. A job is acknowledged once
its provider answered for good:

- sent:         acknowledged (metric `parley_push_delay_seconds`: enqueued -> accepted);
- dead token:   the device's token is forgotten (unless it registered another since);
- retry:        (outage, 429, 5xx, no answer) tried again after the provider's Retry-After
                or `base * 2^(attempt-1)` up to a maximum, at most `push_max_attempts`
                times, then given up;
- failed:       (bad credentials, a request the provider refuses) dropped and logged;
- expired:      a job older than its payload is dropped without sending.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from parley.v1 import push_pb2
from parley_protocol import subjects
from parley_protocol.clock import Clock, now_ms
from parley_push import store
from parley_push.credentials import Senders
from parley_push.jobs import ACK_WAIT_SECONDS
from parley_push.metrics import DELAY_SECONDS_BY, JOBS_BY, SEND_SECONDS_BY
from parley_push.providers.base import Notification, OutcomeKind
from parley_push.pulls import JobPull
from parley_push.settings import PushSettings
from parley_push.tokens import provider_name
from parley_service import tracing
from parley_service.app_label import app_label
from parley_service.assets import JetStreamAssets
from parley_service.logs import get_logger

log = get_logger("parley.push.senders")


def retry_delay(attempt: int, base: float, maximum: float, retry_after: float | None) -> float:
    """Seconds until attempt `attempt + 1`: the provider's word, else exponential."""
    if retry_after is not None and retry_after > 0:
        return min(retry_after, maximum)
    return min(base * float(2 ** max(attempt - 1, 0)), maximum)


class JobSenders:
    def __init__(
        self,
        settings: PushSettings,
        nc: NATS,
        assets: JetStreamAssets,
        db: store.Db,
        senders: Senders,
        clock: Clock,
    ) -> None:
        self._db = db
        self._senders = senders
        self._clock = clock
        self._pull = JobPull(
            nc,
            subjects.PUSH_STREAM,
            subjects.PUSH_CONSUMER,
            settings.push_concurrency,
            self._start_job,
            assets.lost,
        )
        self._base = settings.push_retry_base_seconds
        self._max = settings.push_retry_max_seconds
        self._attempts = settings.push_max_attempts
        self._jobs: dict[asyncio.Task[None], Msg] = {}  # jobs at work: their message
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._pull.start()
        self._ticker = asyncio.create_task(self._working(), name="push-senders-working")

    async def stop(self) -> None:
        await self._pull.stop()
        if self._jobs:  # jobs in flight finish (or JetStream gives them out again)
            await asyncio.wait(list(self._jobs), timeout=5.0)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    async def _working(self) -> None:
        """Tell JetStream that the jobs at work are being worked on, every third of their
        ack wait, so that none is given to another sender while a slow provider request
        runs. (One task for all of them: a job that ends within a third of the ack wait, as
        nearly all do, costs nothing here.)"""
        seen: set[asyncio.Task[None]] = set()
        while True:
            await asyncio.sleep(ACK_WAIT_SECONDS / 3)
            current = set(self._jobs)
            for task in current & seen:  # at work for a third of the ack wait already
                with contextlib.suppress(Exception):
                    await self._jobs[task].in_progress()
            seen = current

    def _start_job(self, msg: Msg) -> None:
        task = asyncio.create_task(self._one(msg))
        self._jobs[task] = msg
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._jobs.pop(task, None)

    async def _one(self, msg: Msg) -> None:
        try:
            # A span of the trace the job was published in (the call's or the message's).
            with tracing.consumer_span("parley.push", msg.subject, msg.headers):
                await self._send(msg)
        except Exception as exc:  # never lose a job to a bug: JetStream gives it out again
            log.error("job_failed", error=repr(exc))
            with contextlib.suppress(Exception):
                await msg.nak(delay=self._base)
        finally:
            await self._pull.freed()

    async def _send(self, msg: Msg) -> None:
        job = push_pb2.PushJob()
        try:
            job.ParseFromString(msg.data)
            provider = provider_name(job.provider)
        except Exception as exc:
            log.error("job_unreadable", error=repr(exc))
            await msg.term()
            return
        attempt = msg.metadata.num_delivered or 1
        app = app_label(job.application_key)
        if now_ms(self._clock) >= job.expires_at_ms:
            JOBS_BY(provider, "expired", app).inc()
            await msg.term()
            return
        sender = await self._senders.get(job.application_key, job.provider)
        if sender is None:
            JOBS_BY(provider, "no_credentials", app).inc()
            log.warning("no_credentials", app=job.application_key, provider=provider)
            await msg.term()
            return
        notification = Notification(
            kind=job.kind,
            payload=job.payload,
            collapse_id=job.collapse_id,
            ttl_seconds=max(1, (job.expires_at_ms - now_ms(self._clock)) // 1000),
        )
        started = self._clock.monotonic()
        outcome = await sender.send(job.token, notification)
        SEND_SECONDS_BY(provider).observe(self._clock.monotonic() - started)
        if outcome.kind is OutcomeKind.SENT:
            JOBS_BY(provider, "sent", app).inc()
            DELAY_SECONDS_BY(provider).observe(
                max(0.0, (now_ms(self._clock) - job.enqueued_at_ms) / 1000)
            )
            await msg.ack()
        elif outcome.kind is OutcomeKind.DEAD_TOKEN:
            JOBS_BY(provider, "dead_token", app).inc()
            forgotten = await store.forget_token(
                self._db,
                job.application_key,
                job.recipient_user_id,
                job.instance_id,
                job.provider,
                job.token,
                datetime.fromtimestamp(self._clock.time(), UTC),
            )
            log.info(
                "token_dead",
                app=job.application_key,
                user=job.recipient_user_id,
                provider=provider,
                forgotten=forgotten,
                reason=outcome.reason,
            )
            await msg.ack()
        elif outcome.kind is OutcomeKind.RETRY and attempt < self._attempts:
            JOBS_BY(provider, "retry", app).inc()
            delay = retry_delay(attempt, self._base, self._max, outcome.retry_after)
            log.info(
                "push_retry",
                app=job.application_key,
                provider=provider,
                attempt=attempt,
                delay=round(delay, 2),
                reason=outcome.reason,
            )
            await msg.nak(delay=delay)
        else:
            outcome_name = "gave_up" if outcome.kind is OutcomeKind.RETRY else "failed"
            JOBS_BY(provider, outcome_name, app).inc()
            log.warning(
                "push_" + outcome_name,
                app=job.application_key,
                provider=provider,
                attempt=attempt,
                status=outcome.status,
                reason=outcome.reason,
            )
            await msg.term()
