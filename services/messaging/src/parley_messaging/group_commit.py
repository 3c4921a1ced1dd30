"""Group commit: many concurrent requests written in one transaction.

A request submits its item and waits. One writer task takes everything queued (up to
`max_batch`, optionally after waiting `window_seconds` for more), flushes the batch (one
transaction, one commit: see commits.py), then gives each waiting request its own result,
or the batch's error. While a commit runs, new requests queue up and make the next batch:
under load batches grow by themselves, and a lone request waits for no one.

The flush is a function of the batch only, so this class knows nothing of SQL (and is
tested with a fake flush). A request cancelled before its batch was taken is left out of
it; one cancelled after is written all the same (its client retries: writes are
idempotent).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from parley_messaging.metrics import COMMIT_BATCH_SIZE, COMMIT_SECONDS, COMMITS
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import db, tasks, tracing
from parley_service.logs import get_logger

log = get_logger("parley.messaging.group_commit")

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[Sequence[T]], Awaitable[Sequence[R]]]


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        kind: str,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        max_batch: int,
        window_seconds: float = 0.0,
    ) -> None:
        """`kind` names the writer in metrics and logs (messages, acks, reads); `flush`
        writes a batch and returns one result per item, in order."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.kind = kind
        self._flush = flush
        self._max_batch = max_batch
        self._window = window_seconds
        self._queue: deque[_Waiting[T, R]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._tracer = tracing.tracer("parley.messaging")
        self._span_name = f"commit {kind}"
        # Batches flushed and items written by this writer (for tests and logs).
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"group-commit-{self.kind}")

    async def stop(self) -> None:
        """Stop taking requests; the batch being written is cut off, and every request still
        waiting is answered UNAVAILABLE (retry, on another replica)."""
        self._closed = True
        await tasks.stop(self._task)
        self._task = None
        while self._queue:
            self._fail(self._queue.popleft(), _stopping())

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, item: T) -> R:
        """Queue the item for the next batch; return its result once the batch committed, or
        raise the batch's error."""
        if self._closed:
            raise _stopping()
        if self._task is None:
            raise RuntimeError(f"the {self.kind} writer was not started")
        waiting: _Waiting[T, R] = _Waiting(item, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        self._wakeup.set()
        # The request's wait for its batch, in the request's trace (the writer has its own).
        with self._tracer.start_as_current_span(self._span_name):
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
                self._fail(waiting, _stopping())
            raise
        except Exception as exc:
            outcome = "unavailable" if db.is_unavailable(exc) else "failed"
            log.warning(
                "commit_failed", kind=self.kind, items=len(batch), error=repr(exc), outcome=outcome
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
            COMMITS.labels(self.kind, outcome).inc()
            COMMIT_BATCH_SIZE.labels(self.kind).observe(len(batch))
            COMMIT_SECONDS.labels(self.kind).observe(time.perf_counter() - started)

    @staticmethod
    def _fail(waiting: _Waiting[T, R], exc: BaseException) -> None:
        if not waiting.future.done():
            waiting.future.set_exception(exc)


def _stopping() -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_UNAVAILABLE, "the messaging service is stopping; retry")
