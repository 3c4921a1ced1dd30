"""Jobs from the push consumer as they come, for a fixed number of sender slots.

nats-py's `fetch` asks for a batch, waits for it and returns it: at a few jobs a second each
job paid for a request of its own, the server's "no messages" answer, timers and several task
switches (about a third of the push service's CPU at 100 pushes a second). Here one pull
request at a time stays open on the server for up to EXPIRES_SECONDS, and each job it
delivers starts as it arrives. A request asks for every free slot and no more, so no more
jobs are at work than there are slots; a job's end frees its slot for the next request.

- The server ends a request that got fewer jobs than it asked for at its expiry (status
  408); the next one is asked for at once.
- A request that the server never ends (NATS restarted and forgot it) is given up
  LATE_SECONDS after its expiry.
- "Consumer deleted" or "JetStream unavailable" (409, 503) report the consumer missing so
  that it is made again, and the next request waits RETRY_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from parley_service.logs import get_logger
from parley_service.replies import NO_RESPONDERS, STATUS_HEADER

log = get_logger("parley.push.pulls")

# How long a pull request stays open on the server when it gets fewer jobs than it asked.
EXPIRES_SECONDS = 2.0
# A request with no word from the server this long after its expiry is taken as gone.
LATE_SECONDS = 1.0
# How long to wait before asking again after the server refused a request.
RETRY_SECONDS = 0.5
# With a few slots free, wait this long for more to free before asking for them.
GATHER_SECONDS = 0.002

_HEARTBEAT = "100"
_EXPIRED = "408"


class JobPull:
    """Pull requests for the free slots of `slots`; `on_job(msg)` for each job delivered,
    `on_missing(reason)` when the server says the consumer or JetStream is not there."""

    def __init__(
        self,
        nc: NATS,
        stream: str,
        consumer: str,
        slots: int,
        on_job: Callable[[Msg], None],
        on_missing: Callable[[str], None],
    ) -> None:
        self._nc = nc
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._name = f"{stream}/{consumer}"
        self._on_job = on_job
        self._on_missing = on_missing
        self._free = slots  # slots neither at work nor asked for
        self._gather = max(1, slots // 8)  # free slots worth a request of their own at once
        self._inbox = ""
        self._sub: Subscription | None = None
        self._asked = 0  # jobs the open request may still deliver (0: none open)
        self._deadline = 0.0  # when the open request is taken as gone
        self._not_before = 0.0  # no request before this (after a refusal)
        self._gathering: asyncio.TimerHandle | None = None
        self._watch: asyncio.Task[None] | None = None
        self._asks: set[asyncio.Future[None]] = set()  # asked from a timer
        self._stopping = False
        self.requests_lost = 0  # requests given up with no word from the server

    @property
    def idle_slots(self) -> int:
        """Slots with no job at work (free, or asked for by the open request)."""
        return self._free + self._asked

    async def start(self) -> None:
        self._stopping = False
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)
        self._watch = asyncio.create_task(self._watching(), name="push-pull-watch")
        await self._ask()

    async def stop(self) -> None:
        """No more requests; the open one's jobs not yet delivered go to other replicas (or
        to this one's next start) once it expires."""
        self._stopping = True
        if self._gathering is not None:
            self._gathering.cancel()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def freed(self) -> None:
        """A job ended: its slot is free."""
        self._free += 1
        await self._ask()

    # -- requests ----------------------------------------------------------------------------

    async def _ask(self, now: bool = False) -> None:
        """Ask for every free slot, unless a request is open. With only
        a few free, wait GATHER_SECONDS first (unless `now`), so that a busy replica asks for
        slots by the handful rather than one at a time."""
        loop = asyncio.get_running_loop()
        if self._stopping or self._asked or self._free < 1:
            return
        if loop.time() < self._not_before:
            return  # the watcher asks once the pause is over
        if self._free < self._gather and not now:
            if self._gathering is None:
                self._gathering = loop.call_later(GATHER_SECONDS, self._gathered)
            return
        if self._gathering is not None:
            self._gathering.cancel()
            self._gathering = None
        count, self._free = self._free, 0
        self._asked = count
        self._deadline = loop.time() + EXPIRES_SECONDS + LATE_SECONDS
        try:
            body = {"batch": count, "expires": int(EXPIRES_SECONDS * 1e9)}
            await self._nc.publish(self._subject, json.dumps(body).encode(), reply=self._inbox)
        except Exception as exc:  # NATS not there now: the slots wait for the next try
            self._end(f"request failed: {exc!r}", pause=True)

    def _gathered(self) -> None:
        self._gathering = None
        if not self._stopping:
            self._asks.add(task := asyncio.ensure_future(self._ask(now=True)))
            task.add_done_callback(self._asks.discard)

    def _end(self, why: str | None, pause: bool = False) -> None:
        """The open request will deliver no more: its slots not filled are free again."""
        self._free += self._asked
        self._asked = 0
        if pause:
            self._not_before = asyncio.get_running_loop().time() + RETRY_SECONDS
            log.warning("pull_refused", consumer=self._name, why=why)

    async def _watching(self) -> None:
        """Give up a request the server forgot, and ask again after a pause."""
        while True:
            await asyncio.sleep(LATE_SECONDS / 2)
            if self._asked and asyncio.get_running_loop().time() > self._deadline:
                self._end(None)
                self.requests_lost += 1
                log.info("pull_lost", consumer=self._name)
            await self._ask(now=True)

    # -- what the server sends -------------------------------------------------------------

    async def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get(STATUS_HEADER) if msg.headers else None
        if status is None:  # a job
            if self._asked:
                self._asked -= 1
            else:  # from a request already given up: its slot was not set aside
                self._free -= 1
            self._on_job(msg)
            if not self._asked:
                await self._ask()
            return
        if status == _HEARTBEAT:
            return
        if status == _EXPIRED:
            self._end(None)
            await self._ask()
            return
        description = (msg.headers or {}).get("Description", "")
        self._end(f"{status} {description}".strip(), pause=True)
        if status == NO_RESPONDERS or "deleted" in description.lower():
            self._on_missing(f"consumer {self._name}: {status} {description}".strip())
