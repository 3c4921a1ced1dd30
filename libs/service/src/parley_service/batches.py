"""Batches: many concurrent requests served by one flush, as a group commit (messaging
writes a batch of sends in one transaction) or a joint lookup (push reads the devices of a
batch of notifications in one query).

A request submits its item and waits. One task takes everything queued (up to
`max_batch`, optionally after waiting `window_seconds` for more), flushes the batch, then
gives each waiting request its own result, or the batch's error. While a flush runs, new
requests queue up and make the next batch: under load batches grow by themselves, and a
lone request waits for no one.

The flush is a function of the batch only, so this class knows nothing of SQL (and is
tested with a fake flush). A request cancelled before its batch was taken is left out of
it; one cancelled after is flushed all the same (a write's client retries: writes are
idempotent).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import Counter, Histogram

from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import db, tasks, tracing
from parley_service.logs import get_logger

log = get_logger("parley.batches")

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[Sequence[T]], Awaitable[Sequence[R]]]


@dataclass(frozen=True)
class BatchMetrics:
    """A service's families for its batches: `flushes` by kind and outcome (ok,
    unavailable, failed, cancelled), `sizes` and `seconds` of each flush by kind."""

    flushes: Counter
    sizes: Histogram
    seconds: Histogram


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


class Batcher(Generic[T, R]):
    def __init__(
        self,
        service: str,
        kind: str,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        metrics: BatchMetrics,
        max_batch: int,
        window_seconds: float = 0.0,
    ) -> None:
        """`kind` names the batches in metrics, logs and spans (messages, acks, devices);
        `flush` serves a batch and returns one result per item, in order."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.service = service
        self.kind = kind
        self._flush = flush
        self._metrics = metrics
        self._max_batch = max_batch
        self._window = window_seconds
        self._queue: deque[_Waiting[T, R]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._tracer_name = f"parley.{service}"
        self._span_name = f"batch {kind}"
        # Batches flushed and items served (for tests and logs).
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"batches-{self.kind}")

    async def stop(self) -> None:
        """Stop taking requests; the batch being flushed is cut off, and every request still
        waiting is answered UNAVAILABLE (retry, on another replica)."""
        self._closed = True
        await tasks.stop(self._task)
        self._task = None
        while self._queue:
            self._fail(self._queue.popleft(), self._stopping())

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, item: T) -> R:
        """Queue the item for the next batch; return its result once the batch is flushed,
        or raise the batch's error."""
        if self._closed:
            raise self._stopping()
        if self._task is None:
            raise RuntimeError(f"the {self.kind} batches were not started")
        waiting: _Waiting[T, R] = _Waiting(item, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        self._wakeup.set()
        # The request's wait for its batch, in the request's trace.
        with tracing.child_span(self._tracer_name, self._span_name):
            return await waiting.future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if self._window > 0:
                await asyncio.sleep(self._window)
            batch = self._take()
            if batch:
                await self._write(batch)

    def _take(self) -> list[_Waiting[T, R]]:
        batch: list[_Waiting[T, R]] = []
        while self._queue and len(batch) < self._max_batch:
            waiting = self._queue.popleft()
            if not waiting.future.done():  # its request was cancelled meanwhile
                batch.append(waiting)
        if not self._queue:
            self._wakeup.clear()
        return batch

    async def _write(self, batch: list[_Waiting[T, R]]) -> None:
        started = time.perf_counter()
        outcome = "ok"
        try:
            results = await self._flush([w.item for w in batch])
            if len(results) != len(batch):
                raise RuntimeError(
                    f"the {self.kind} flush gave {len(results)} results for {len(batch)} items"
                )
        except asyncio.CancelledError:
            outcome = "cancelled"
            for waiting in batch:
                self._fail(waiting, self._stopping())
            raise
        except Exception as exc:
            outcome = "unavailable" if db.is_unavailable(exc) else "failed"
            log.warning(
                "batch_failed",
                service=self.service,
                kind=self.kind,
                items=len(batch),
                error=repr(exc),
                outcome=outcome,
            )
            for waiting in batch:
                self._fail(waiting, exc)
        else:
            for waiting, result in zip(batch, results, strict=True):
                if not waiting.future.done():
                    waiting.future.set_result(result)
        finally:
            self.batches += 1
            self.items += len(batch)
            self._metrics.flushes.labels(self.kind, outcome).inc()
            self._metrics.sizes.labels(self.kind).observe(len(batch))
            self._metrics.seconds.labels(self.kind).observe(time.perf_counter() - started)

    def _stopping(self) -> ParleyError:
        return ParleyError(
            ErrorCode.ERROR_CODE_UNAVAILABLE, f"the {self.service} service is stopping; retry"
        )

    @staticmethod
    def _fail(waiting: _Waiting[T, R], exc: BaseException) -> None:
        if not waiting.future.done():
            waiting.future.set_exception(exc)
