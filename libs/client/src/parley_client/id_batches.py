"""Requests that name messages by id (AckMessages, MarkRead), coalesced: the ids asked for
within BATCH_DELAY of each other go in one request (BATCH_LIMIT ids at most; more take
several, one after another). Ids whose request failed for a passing reason can be kept:
they are asked again after a backoff (and at once by `retry()`, after a reconnect)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable

from parley_client.backoff import backoff_delay
from parley_client.errors import ErrorType, ParleyError, terminated
from parley_client.futures import app_future, settle
from parley_client.logs import AreaLog
from parley_protocol.errors import ErrorCode

BATCH_DELAY = 0.005
BATCH_LIMIT = 100
# Kept ids are asked again after between half and all of RETRY_INITIAL * 2**n (at most
# RETRY_CAP) seconds, n the failures in a row.
RETRY_INITIAL = 1.0
RETRY_CAP = 30.0

# Sends one request for these ids; raises ParleyError when it failed.
Send = Callable[[list[str]], Awaitable[None]]


def retryable(error: ParleyError) -> bool:
    """Whether the same request may succeed later (not connected, timed out, unavailable,
    rate limited)."""
    return error.type is ErrorType.NETWORK or error.error_code == ErrorCode.ERROR_CODE_RATE_LIMITED


class IdBatches:
    """Coalesces ids into requests of `send`. With `keep_failed`, the ids of a request that
    failed for a passing reason are kept and asked again by `retry()` (after a reconnect)."""

    def __init__(
        self,
        what: str,
        send: Send,
        log: AreaLog,
        *,
        keep_failed: bool,
        delay: float = BATCH_DELAY,
        limit: int = BATCH_LIMIT,
        retry_initial: float = RETRY_INITIAL,
        retry_cap: float = RETRY_CAP,
        rng: random.Random | None = None,
    ) -> None:
        self._what = what
        self._send = send
        self._log = log
        self._keep_failed = keep_failed
        self._delay = delay
        self._limit = limit
        self._waiting: list[tuple[list[str], asyncio.Future[None]]] = []
        self._failed: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._retry_initial = retry_initial
        self._retry_cap = retry_cap
        self._rng = rng or random.Random()
        self._failures = 0  # failed requests in a row
        self._later: asyncio.TimerHandle | None = None

    @property
    def failed(self) -> list[str]:
        """The ids kept for `retry()`."""
        return list(self._failed)

    def add(self, ids: Iterable[str]) -> asyncio.Future[None]:
        """Ask for `ids`; the future settles when the request that carried them was answered
        (failed with its ParleyError if it was not)."""
        future = app_future()
        if self._closed:
            future.set_exception(terminated())
            return future
        self._waiting.append((list(ids), future))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"parley {self._what}"
            )
        return future

    def retry(self) -> None:
        """Ask again for the ids whose request failed for a passing reason."""
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if self._closed:
            return
        failed, self._failed = self._failed, []
        if failed:
            self._log.info(f"{self._what}: asking again for {len(failed)} message(s)")
            self.add(failed)

    async def close(self, timeout: float) -> None:
        """Send what waits (for at most `timeout`), then take no more."""
        self._closed = True
        if self._later is not None:
            self._later.cancel()
            self._later = None
        task = self._task
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        waiting, self._waiting = self._waiting, []
        settle([future for _, future in waiting], terminated())

    async def _run(self) -> None:
        try:
            await asyncio.sleep(self._delay)
            while self._waiting:
                batch, self._waiting = self._waiting, []
                ids = list(dict.fromkeys(i for ids, _ in batch for i in ids))
                error = await self._send_all(ids)
                settle([future for _, future in batch], error)
        finally:
            self._task = None

    async def _send_all(self, ids: list[str]) -> ParleyError | None:
        for start in range(0, len(ids), self._limit):
            chunk = ids[start : start + self._limit]
            try:
                await self._send(chunk)
            except ParleyError as exc:
                left = ids[start:]
                if self._keep_failed and retryable(exc):
                    kept = set(self._failed)
                    self._failed.extend(i for i in left if i not in kept)
                    self._log.info(f"{self._what} of {len(left)} message(s) failed ({exc}); kept")
                    self._retry_later()
                else:
                    self._log.warning(f"{self._what} of {len(left)} message(s) failed: {exc}")
                return exc
        self._failures = 0
        return None

    def _retry_later(self) -> None:
        if self._later is not None or self._closed:
            return
        delay = backoff_delay(self._failures, self._rng, self._retry_initial, self._retry_cap)
        self._failures += 1

        def due() -> None:
            self._later = None
            self.retry()

        self._later = asyncio.get_running_loop().call_later(delay, due)
