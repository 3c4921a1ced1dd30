"""Composition root of the messaging service: settings, the four group-commit writers
(sends, acknowledgements, reads, told marks), recipients' registrations, presence, device
events, the handlers of the routed messaging bodies, the redelivery sweeper and the
retention purge."""

from __future__ import annotations

from typing import TypeVar

from parley_messaging import commits, store
from parley_messaging.events import MessageEvents
from parley_messaging.handlers import (
    MessageWriter,
    MessagingHandlers,
    ReceiptWriter,
    ToldWriter,
    declare_endpoints,
)
from parley_messaging.metrics import COMMIT_METRICS, PURGED
from parley_messaging.online import OnlineUsers
from parley_messaging.redeliver import Redeliverer
from parley_messaging.registered import RegisteredUsers
from parley_messaging.settings import MessagingSettings
from parley_service.batches import Batcher
from parley_service.db import Migrations
from parley_service.devices import DeviceEvents
from parley_service.logs import get_logger
from parley_service.presence import GatewayLiveness, PresenceReader
from parley_service.retention import Purger
from parley_service.runtime import Runtime

log = get_logger("parley.messaging")

T = TypeVar("T")
R = TypeVar("R")

SETTINGS = MessagingSettings
MIGRATIONS = Migrations("messaging", "parley_messaging.migrations")


def handlers_of(runtime: Runtime) -> MessagingHandlers:
    return runtime.component("messaging", MessagingHandlers)


def purger_of(runtime: Runtime) -> Purger:
    return runtime.component("purger", Purger)


def redeliverer_of(runtime: Runtime) -> Redeliverer:
    return runtime.component("redeliverer", Redeliverer)


def writer_of(runtime: Runtime, kind: str) -> Batcher[object, object]:
    """The group-commit writer of `kind`: messages, acks, reads or told."""
    writer: Batcher[object, object] = runtime.component(f"{kind}_writer", Batcher)
    return writer


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    if not isinstance(settings, MessagingSettings):
        raise TypeError(
            f"the messaging service needs MessagingSettings, not {type(settings).__name__}"
        )
    if not settings.database_url:
        raise ValueError("the messaging service needs PARLEY_DATABASE_URL")
    pool = runtime.db
    timeout = settings.message_commit_timeout_seconds

    def writer(kind: str, write: commits.Write[T, R], transaction: bool) -> Batcher[T, R]:
        group: Batcher[T, R] = Batcher(
            "messaging",
            kind,
            commits.flush_by(pool, write, timeout, kind, transaction=transaction),
            COMMIT_METRICS,
            settings.message_batch_max,
            settings.message_batch_window_seconds,
        )
        group.start()
        runtime.on_stop(group.stop)
        return group

    # One statement each: messages with their recipients; told marks that stand alone.
    messages: MessageWriter = writer("messages", commits.write_messages, transaction=False)
    acks: ReceiptWriter = writer("acks", commits.write_acks, transaction=True)
    reads: ReceiptWriter = writer("reads", commits.write_reads, transaction=True)
    told: ToldWriter = writer("told", commits.write_told, transaction=False)

    liveness = GatewayLiveness(runtime.nc, runtime.clock)
    await liveness.start()
    runtime.on_stop(liveness.stop)
    presence = PresenceReader(runtime.nc, liveness)
    online = OnlineUsers(presence)
    online.start()
    runtime.on_stop(online.stop)
    events = MessageEvents(
        DeviceEvents(runtime.nc, settings.window), DeviceEvents(runtime.nc, window=False)
    )
    handlers = MessagingHandlers(
        settings,
        pool,
        messages,
        acks,
        reads,
        told,
        RegisteredUsers(runtime.bus, settings.message_registered_cache_size),
        online,
        events,
        runtime.bus,
        runtime.clock,
    )
    purger = Purger(
        "messages",
        pool,
        runtime.clock,
        settings.retention_seconds,
        settings.message_purge_seconds,
        store.delete_messages_before,
        PURGED,
    )
    redeliverer = Redeliverer(
        pool,
        events,
        presence,
        runtime.clock,
        settings.message_redeliver_seconds,
        settings.message_redeliver_after_seconds,
        settings.message_redeliver_max_age_seconds,
    )
    runtime.components.update(
        messaging=handlers,
        purger=purger,
        redeliverer=redeliverer,
        messages_writer=messages,
        acks_writer=acks,
        reads_writer=reads,
        told_writer=told,
    )
    declare_endpoints(runtime.bus, handlers)
    purger.start()
    runtime.on_stop(purger.stop)
    redeliverer.start()
    runtime.on_stop(redeliverer.stop)
    log.info(
        "messaging_ready",
        max_recipients=settings.message_max_recipients,
        max_text_bytes=settings.message_max_text_bytes,
        retention_days=settings.message_retention_days,
        batch_max=settings.message_batch_max,
    )
