"""The JetStream assets a service needs (streams, KV buckets, consumers), kept in place.

A service declares each asset once (`runtime.assets.add(...)`); the runtime makes or binds
it at once, and makes it again whenever the NATS connection comes back, an operation finds
it missing (`lost()`), or the periodic check does not find it: a NATS server restarted with
memory storage has forgotten it, and a cluster may have lost it. After each restoration the
service's `on_restored` hooks write its ephemeral state again at once (the gateway rewrites
the presence entries of the sessions it holds). Until every asset is back, readiness says
which are missing.

Storage is chosen per asset, on purpose: memory for what can be rebuilt (presence, the
resume window by default), file for what must survive a restart (message transport, push
jobs, statistics). File assets are replicated over `PARLEY_JETSTREAM_REPLICAS` servers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, KeyValueConfig, StorageType, StreamConfig
from nats.js.client import KV_STREAM_TEMPLATE

from parley_service import tasks
from parley_service.logs import get_logger

log = get_logger("parley.assets")

Hook = Callable[[], Awaitable[None]]

# Errors that say "JetStream or the asset is not there (now)", as opposed to bugs.
MISSING_ERRORS: tuple[type[BaseException], ...] = (
    nats.js.errors.NotFoundError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
)


def asset_missing(exc: BaseException) -> bool:
    """Whether an operation's error says the asset (or JetStream) is not there. A missing
    *key* of a bucket (KeyNotFoundError is a NotFoundError too) says nothing of the kind."""
    return isinstance(exc, MISSING_ERRORS) and not isinstance(exc, nats.js.errors.KeyValueError)


# ... and those worth retrying while JetStream comes back (it answers errors meanwhile).
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (*MISSING_ERRORS, nats.js.errors.APIError)
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 2.0


class Asset(Protocol):
    @property
    def name(self) -> str: ...

    async def ensure(self, js: JetStreamContext) -> None:
        """Make the asset, or bind to it if it is there."""

    async def exists(self, js: JetStreamContext) -> bool: ...


@dataclass(frozen=True)
class KeyValueBucket:
    """A KV bucket (a stream underneath)."""

    config: KeyValueConfig

    @property
    def name(self) -> str:
        return f"KV bucket {self.config.bucket}"

    @property
    def stream(self) -> str:
        return KV_STREAM_TEMPLATE.format(bucket=self.config.bucket)

    async def ensure(self, js: JetStreamContext) -> None:
        try:
            info = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            try:
                await js.create_key_value(self.config)
                log.info("asset_created", asset=self.name, storage=str(self.config.storage))
            except nats.js.errors.BadRequestError:
                await js.stream_info(self.stream)  # another replica made it first
            return
        if self.config.direct and not info.config.allow_direct:
            await js.update_stream(info.config.evolve(allow_direct=True))
            log.info("asset_updated", asset=self.name, allow_direct=True)

    async def exists(self, js: JetStreamContext) -> bool:
        return await _stream_exists(js, self.stream)


@dataclass(frozen=True)
class Stream:
    """A stream; an existing one with another configuration is updated where it can be."""

    config: StreamConfig

    @property
    def name(self) -> str:
        return f"stream {self.config.name}"

    async def ensure(self, js: JetStreamContext) -> None:
        assert self.config.name is not None
        try:
            info = await js.stream_info(self.config.name)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(self.config)
                log.info("asset_created", asset=self.name, storage=str(self.config.storage))
            except nats.js.errors.BadRequestError:
                await js.stream_info(self.config.name)  # another replica made it first
            return
        wanted = info.config.evolve(**_owned_fields(self.config))
        if wanted != info.config:
            try:
                await js.update_stream(wanted)
                log.info("asset_updated", asset=self.name)
            except nats.js.errors.BadRequestError as exc:
                log.warning("asset_config_differs", asset=self.name, error=str(exc))

    async def exists(self, js: JetStreamContext) -> bool:
        assert self.config.name is not None
        return await _stream_exists(js, self.config.name)


@dataclass(frozen=True)
class Consumer:
    """A durable consumer of a stream (declare its stream first)."""

    stream: str
    config: ConsumerConfig

    @property
    def name(self) -> str:
        return f"consumer {self.stream}/{self.config.durable_name}"

    async def ensure(self, js: JetStreamContext) -> None:
        await js.add_consumer(self.stream, self.config)

    async def exists(self, js: JetStreamContext) -> bool:
        assert self.config.durable_name is not None
        try:
            await js.consumer_info(self.stream, self.config.durable_name)
        except nats.js.errors.NotFoundError:
            return False
        return True


def _owned_fields(config: StreamConfig) -> dict[str, object]:
    """The fields of a stream's configuration that its declaration sets."""
    return {
        field.name: getattr(config, field.name)
        for field in dataclasses.fields(config)
        if getattr(config, field.name) is not None
    }


async def _stream_exists(js: JetStreamContext, name: str) -> bool:
    try:
        await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        return False
    return True


def memory_or_file(file: bool) -> StorageType:
    return StorageType.FILE if file else StorageType.MEMORY


class JetStreamAssets:
    def __init__(self, nc: NATS, replicas: int = 1, check_seconds: float = 5.0) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self.replicas = replicas
        self._check_seconds = check_seconds
        self._assets: list[Asset] = []
        self._missing: set[str] = set()
        self._hooks: list[Hook] = []
        self._restoring: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._closed = False
        self._again = False  # a loss was reported while a restoration ran
        self.restorations = 0  # how many times assets were made again (for tests, metrics)

    @property
    def missing(self) -> list[str]:
        return sorted(self._missing)

    @property
    def names(self) -> list[str]:
        return [asset.name for asset in self._assets]

    async def add(self, asset: Asset) -> None:
        """Declare `asset` and make (or bind) it now; raises if it cannot be made."""
        await asset.ensure(self._js)
        self._assets.append(asset)
        if self._watch is None and not self._closed:
            self._watch = asyncio.create_task(self._watch_loop(), name="jetstream-assets")

    def on_restored(self, hook: Hook) -> None:
        """Call `hook()` after the assets were made again (write ephemeral state anew)."""
        self._hooks.append(hook)

    def lost(self, reason: str) -> None:
        """An operation found an asset missing: make them all again (in the background). A
        loss reported while a restoration runs has it go round once more when it is done
        (what it already made may be gone again)."""
        self._missing.update(self.names)
        if self._restoring is None or self._restoring.done():
            log.warning("asset_lost", reason=reason)
            self._restoring = asyncio.create_task(self._restore(), name="jetstream-restore")
        else:  # one line per restoration, however many operations find it missing
            self._again = True

    def reconnected(self) -> None:
        """The NATS connection came back (the server may have restarted)."""
        if self._assets:
            self.lost("NATS connection restored")

    async def ready(self) -> str | None:
        """A readiness check: None when every asset is in place."""
        if self._missing:
            return f"JetStream assets missing: {', '.join(self.missing)}"
        return None

    async def close(self) -> None:
        self._closed = True
        await tasks.stop(self._watch, self._restoring)
        self._watch = self._restoring = None

    async def _restore(self) -> None:
        delay = RETRY_FIRST_SECONDS
        while not self._closed:
            self._again = False
            try:
                for asset in self._assets:
                    await asset.ensure(self._js)
                    self._missing.discard(asset.name)
            except RETRYABLE_ERRORS as exc:
                log.info("asset_restore_retry", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            if not self._again:
                break
        self.restorations += 1
        log.info("assets_restored", assets=self.names)
        for hook in self._hooks:
            try:
                await hook()
            except Exception:
                log.exception("asset_restored_hook_failed")

    async def _watch_loop(self) -> None:
        """Look for every asset now and then: one deleted or forgotten is made again."""
        while True:
            await asyncio.sleep(self._check_seconds)
            if not self._nc.is_connected or (self._restoring and not self._restoring.done()):
                continue
            for asset in list(self._assets):
                try:
                    present = await asset.exists(self._js)
                except RETRYABLE_ERRORS:
                    present = False
                if not present:
                    self.lost(f"{asset.name} is gone")
                    break
