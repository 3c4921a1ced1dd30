"""Uploads the report of every ended call to the stats service, in the background (the
guide: "the statistics upload is done by the client in the background"): a client feature
with no bodies of its own.

Reports wait in memory, oldest first, at most `max_pending` (the oldest is dropped, with a
log line, to make room). They are sent one at a time while the client is connected. A
failure that may pass (not connected, timed out, the service unavailable or busy) keeps the
report: it is sent again after the next connection, and while connected after a backoff
delay; the service stores a report once per call and device however often it comes. A
report the service refuses otherwise is dropped with a log line. Nothing is kept on disk: the
reports of a client that is terminated before it could send them are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque

from parley_client.backoff import backoff_delay
from parley_client.errors import ParleyError
from parley_client.features import Connected, Feature
from parley_client.id_batches import retryable
from parley_protocol.pb import stats as stats_pb

MAX_PENDING = 100
# Retries while connected: between half and all of RETRY_INITIAL * 2**n, at most RETRY_CAP.
RETRY_INITIAL = 1.0
RETRY_CAP = 60.0


class CallReportUploader(Feature):
    """The client's uploads of call reports (`submit` one; the client does it for every call
    when call statistics are on)."""

    name = "stats"
    bodies: frozenset[str] = frozenset()

    def __init__(
        self,
        *,
        max_pending: int = MAX_PENDING,
        retry_initial: float = RETRY_INITIAL,
        retry_cap: float = RETRY_CAP,
        rng: random.Random | None = None,
    ) -> None:
        self._pending: deque[stats_pb.UploadCallReport] = deque()
        self._max_pending = max_pending
        self._retry_initial = retry_initial
        self._retry_cap = retry_cap
        self._rng = rng or random.Random()
        self._connected = False
        self._closed = False
        self._attempt = 0
        self._wake = asyncio.Event()  # a report came, or the client connected
        self._reconnected = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stalled = asyncio.Event()  # the last attempt failed: waiting to try again
        self._task: asyncio.Task[None] | None = None
        self.uploaded = 0  # reports the service took
        self.dropped = 0  # reports refused, or pushed out by newer ones

    @property
    def pending(self) -> int:
        """Reports waiting to be sent (the one being sent included)."""
        return len(self._pending)

    def submit(self, report: stats_pb.UploadCallReport) -> None:
        """Send `report` when the client can; returns at once."""
        if self._closed:
            self.link.log.info(f"the report of call {report.call_id} is not sent: terminated")
            return
        if len(self._pending) >= self._max_pending:
            oldest = self._pending.popleft()
            self.dropped += 1
            self.link.log.warning(
                f"the report of call {oldest.call_id} was dropped unsent: "
                f"{self._max_pending} reports wait already"
            )
        self._pending.append(report)
        self._idle.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="parley call reports"
            )

    async def flush(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until no report waits; whether none does. Returns
        early when the client is not connected, or an upload failed and waits to be retried
        (the service cannot take reports now)."""
        if self._connected and not self._idle.is_set() and not self._stalled.is_set():
            waits = [
                asyncio.ensure_future(self._idle.wait()),
                asyncio.ensure_future(self._stalled.wait()),
            ]
            try:
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        return self._idle.is_set()

    async def close(self) -> None:
        """Stop sending (what still waits is lost)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- Feature -------------------------------------------------------------------------------

    async def on_connected(self, connected: Connected) -> None:
        self._connected = True
        self._attempt = 0
        self._wake.set()
        self._reconnected.set()

    async def on_disconnected(self, reason: ParleyError) -> None:
        self._connected = False

    # -- internals -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closed:
            if not (self._connected and self._pending):
                if not self._pending:
                    self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            report = self._pending[0]
            try:
                await self.link.request(report, stats_pb.CallReportAccepted)
            except ParleyError as exc:
                if retryable(exc):
                    await self._back_off(report, exc)
                    continue
                self.dropped += 1
                self.link.log.warning(
                    f"the report of call {report.call_id} was refused and dropped: {exc}"
                )
            except Exception as exc:  # not expected: drop this one, go on with the others
                self.dropped += 1
                self.link.log.error(f"the report of call {report.call_id} failed: {exc!r}")
            else:
                self.uploaded += 1
                self._attempt = 0
                self.link.log.debug(f"the report of call {report.call_id} was uploaded")
            if self._pending and self._pending[0] is report:
                self._pending.popleft()

    async def _back_off(self, report: stats_pb.UploadCallReport, error: ParleyError) -> None:
        """Wait before sending again: until the next connection, or the backoff delay."""
        delay = backoff_delay(self._attempt, self._rng, self._retry_initial, self._retry_cap)
        self._attempt += 1
        self.link.log.info(
            f"the report of call {report.call_id} was not sent ({error}); "
            f"trying again in {delay:.1f} s or after the next connection"
        )
        self._reconnected.clear()
        self._stalled.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reconnected.wait(), delay)
        finally:
            self._stalled.clear()
