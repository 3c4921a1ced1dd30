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

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from parley.v1 import push_pb2
from parley_protocol import subjects
from parley_protocol.clock import Clock, now_ms
from parley_push import store
from parley_push.credentials import Senders
from parley_push.jobs import ACK_WAIT_SECONDS
from parley_push.metrics import DELAY_SECONDS, JOBS, SEND_SECONDS
from parley_push.providers.base import Notification, OutcomeKind
from parley_push.settings import PushSettings
from parley_push.tokens import provider_name
from parley_service import tracing
from parley_service.app_label import app_label
from parley_service.assets import JetStreamAssets, asset_missing
from parley_service.logs import get_logger

log = get_logger("parley.push.senders")

# How long one pull waits for jobs before asking again.
PULL_SECONDS = 1.0
# How long to wait before pulling again after the stream or NATS failed.
PULL_RETRY_SECONDS = 0.5


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
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self._assets = assets
        self._db = db
        self._senders = senders
        self._clock = clock
        # Free sender slots: a pull asks for all of them at once, and a job ending frees one.
        # (A counter, not a semaphore taken slot by slot: at a few jobs a second each pull
        # would take and give back hundreds of slots, most of the service's CPU.)
        self._free = settings.push_concurrency
        self._slot_freed = asyncio.Event()
        self._base = settings.push_retry_base_seconds
        self._max = settings.push_retry_max_seconds
        self._attempts = settings.push_max_attempts
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._sub: JetStreamContext.PullSubscription | None = None
        self._jobs: dict[asyncio.Task[None], Msg] = {}  # jobs at work: their message
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="push-senders")
        self._ticker = asyncio.create_task(self._working(), name="push-senders-working")

    async def stop(self) -> None:
        self._stopping = True  # a pull under way may swallow the cancellation
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 2 * PULL_SECONDS + 1)
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

    async def _run(self) -> None:
        self._sub = None
        try:
            await self._pull()
        finally:
            # A pull subscription left open keeps the connection's drain waiting.
            if self._sub is not None:
                with contextlib.suppress(Exception):
                    await self._sub.unsubscribe()
                self._sub = None

    async def _pull(self) -> None:
        while not self._stopping:
            try:
                if self._sub is None:
                    self._sub = await self._js.pull_subscribe_bind(
                        durable=subjects.PUSH_CONSUMER, stream=subjects.PUSH_STREAM
                    )
                sub = self._sub
                while self._free == 0:  # at least one free slot before pulling
                    self._slot_freed.clear()
                    await self._slot_freed.wait()
                free, self._free = self._free, 0
                msgs: list[Msg] = []
                try:
                    msgs = await sub.fetch(batch=free, timeout=PULL_SECONDS)
                finally:
                    self._free += free - len(msgs)
                for msg in msgs:
                    task = asyncio.create_task(self._one(msg))
                    self._jobs[task] = msg
                    task.add_done_callback(self._done)
            except asyncio.CancelledError:
                raise
            except (nats.errors.TimeoutError, TimeoutError):
                continue  # no job within the pull's time
            except Exception as exc:
                if asset_missing(exc):
                    self._assets.lost(f"consumer {subjects.PUSH_STREAM}/{subjects.PUSH_CONSUMER}")
                log.warning("pull_failed", error=repr(exc))
                if self._sub is not None:
                    with contextlib.suppress(Exception):
                        await self._sub.unsubscribe()
                self._sub = None
                await asyncio.sleep(PULL_RETRY_SECONDS)

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
            self._free += 1
            self._slot_freed.set()

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
            JOBS.labels(provider, "expired", app).inc()
            await msg.term()
            return
        sender = await self._senders.get(job.application_key, job.provider)
        if sender is None:
            JOBS.labels(provider, "no_credentials", app).inc()
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
        SEND_SECONDS.labels(provider).observe(self._clock.monotonic() - started)
        if outcome.kind is OutcomeKind.SENT:
            JOBS.labels(provider, "sent", app).inc()
            DELAY_SECONDS.labels(provider).observe(
                max(0.0, (now_ms(self._clock) - job.enqueued_at_ms) / 1000)
            )
            await msg.ack()
        elif outcome.kind is OutcomeKind.DEAD_TOKEN:
            JOBS.labels(provider, "dead_token", app).inc()
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
            JOBS.labels(provider, "retry", app).inc()
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
            JOBS.labels(provider, outcome_name, app).inc()
            log.warning(
                "push_" + outcome_name,
                app=job.application_key,
                provider=provider,
                attempt=attempt,
                status=outcome.status,
                reason=outcome.reason,
            )
            await msg.term()
