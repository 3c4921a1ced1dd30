"""Composition root of the push service: settings, the payload signer, the stream PUSH and
its consumer, the handlers of the routed push bodies and of Notify, and the job senders."""

from __future__ import annotations

from collections.abc import Sequence

from parley_push import store
from parley_push.credentials import Senders
from parley_push.handlers import Lookups, PushHandlers, declare_endpoints
from parley_push.jobs import JobQueue, consumer, stream
from parley_push.metrics import LOOKUP_METRICS
from parley_push.payloads import PayloadSigner, payload_key
from parley_push.senders import JobSenders
from parley_push.settings import PushSettings
from parley_service.batches import Batcher
from parley_service.db import Migrations
from parley_service.logs import get_logger
from parley_service.runtime import Runtime
from parley_service.secrets_box import SecretBox

log = get_logger("parley.push")

SETTINGS = PushSettings
MIGRATIONS = Migrations("push", "parley_push.migrations")
# Notify requests whose device lookups go in one query at most (under load the requests
# that come while a query runs make the next batch).
LOOKUP_BATCH_MAX = 256


def handlers_of(runtime: Runtime) -> PushHandlers:
    return runtime.component("push", PushHandlers)


def senders_of(runtime: Runtime) -> Senders:
    return runtime.component("senders", Senders)


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    if not isinstance(settings, PushSettings):
        raise TypeError(f"the push service needs PushSettings, not {type(settings).__name__}")
    master_key = settings.master_key
    await runtime.assets.add(stream(settings.jetstream_replicas, settings.push_job_max_age_seconds))
    await runtime.assets.add(consumer(settings.push_max_attempts))
    jobs = JobQueue(runtime.nc, runtime.assets)
    db = runtime.db

    async def lookup(batch: Sequence[store.Recipients]) -> list[list[store.DeviceRow]]:
        return await store.devices_of(db, batch)

    lookups: Lookups = Batcher("push", "devices", lookup, LOOKUP_METRICS, LOOKUP_BATCH_MAX)
    lookups.start()
    runtime.on_stop(lookups.stop)
    handlers = PushHandlers(
        settings, db, lookups, PayloadSigner(payload_key(master_key)), jobs, runtime.clock
    )
    senders = Senders(
        runtime.db,
        SecretBox(master_key),
        settings.push_ca_file,
        settings.push_credentials_cache_seconds,
        runtime.clock,
    )
    job_senders = JobSenders(
        settings, runtime.nc, runtime.assets, runtime.db, senders, runtime.clock
    )
    runtime.components.update(push=handlers, senders=senders, job_senders=job_senders)
    declare_endpoints(runtime.bus, handlers)
    await job_senders.start()
    runtime.on_drain(job_senders.stop)  # take no new jobs; JetStream keeps them for others
    runtime.on_stop(job_senders.stop)
    runtime.on_stop(senders.close)
    log.info(
        "push_ready",
        concurrency=settings.push_concurrency,
        max_attempts=settings.push_max_attempts,
        ca_file=settings.push_ca_file or None,
    )
