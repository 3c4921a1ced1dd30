"""Hands the client's unsolicited frames and connection notices to its features.

Each feature has a queue and a task of its own, so a handler that takes seconds delays only
its own feature's frames; each feature hears everything in the order it happened. Whoever
dispatches a frame may ask to hear when it was handled (the ack of a numbered event).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import TypeVar

from parley_client.errors import ParleyError
from parley_client.features import Connected, Feature, FeatureLink
from parley_client.logs import ClientLog
from parley_protocol.bodies import CLIENT_BODIES, SERVER_BODIES
from parley_protocol.pb import client as pb

# How long terminate() lets features finish what is queued (the last notice) before their
# tasks are cancelled.
FEATURE_STOP_TIMEOUT = 1.0

F = TypeVar("F", bound=Feature)

# Called once a frame was handled: its handler returned or raised, or nobody takes it.
Handled = Callable[[], None]
_Notice = tuple[str, Callable[[], object], Handled | None]


class _Runner:
    """One feature's queue of notices and the task that hands them over, one at a time."""

    def __init__(self, feature: Feature, log: ClientLog) -> None:
        self.feature = feature
        self._log = log
        self._queue: asyncio.Queue[_Notice | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def put(self, handler: str, call: Callable[[], object], handled: Handled | None = None) -> None:
        self._queue.put_nowait((handler, call, handled))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"parley feature {self.feature.name}"
            )

    def finish(self) -> asyncio.Task[None] | None:
        """Stop after what is queued; the task to wait for (None if it never ran)."""
        if self._task is not None and not self._task.done():
            self._queue.put_nowait(None)
        return self._task

    async def _run(self) -> None:
        while (notice := await self._queue.get()) is not None:
            handler, call, handled = notice
            try:
                result = call()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self._log.error(
                    self.feature.name, f"{type(self.feature).__name__}.{handler} raised {exc!r}"
                )
            if handled is not None:
                handled()


class FeatureDispatcher:
    """The client's features, and the body each receives.

    `link_for(name)` makes the `FeatureLink` a feature of that name is attached with.
    """

    def __init__(self, log: ClientLog, link_for: Callable[[str], FeatureLink]) -> None:
        self._log = log
        self._link_for = link_for
        self._runners: list[_Runner] = []
        self._by_body: dict[str, _Runner] = {}
        self._current: Connected | None = None
        self._closed = False

    def add(self, feature: Feature) -> None:
        """Attach `feature`; ValueError if its name or one of its bodies cannot be its own."""
        bodies = frozenset(feature.bodies)
        self._check(feature, bodies)
        feature.attached(self._link_for(feature.name))
        runner = _Runner(feature, self._log)
        self._runners.append(runner)
        for body in bodies:
            self._by_body[body] = runner
        if self._current is not None and not self._closed:
            runner.put("on_connected", functools.partial(feature.on_connected, self._current))

    def get(self, kind: type[F]) -> F:
        """The first added feature that is a `kind`; LookupError if there is none."""
        for runner in self._runners:
            if isinstance(runner.feature, kind):
                return runner.feature
        raise LookupError(f"no {kind.__name__} feature was added to this client")

    def dispatch(self, envelope: pb.Envelope, handled: Handled | None = None) -> None:
        """Queue an unsolicited frame for the feature that receives its body. An Error that
        answers no request is logged (and handed on, if a feature receives errors).
        `handled` is called once the feature's `on_frame` returned or raised, or at once if
        no feature receives the body."""
        if self._closed:
            return
        body = envelope.WhichOneof("body") or ""
        if body == "error":
            self._log.warning(
                "client",
                f"gateway error: {envelope.error.reason} (code {envelope.error.code}, "
                f"reply_to {envelope.reply_to})",
            )
        runner = self._by_body.get(body)
        if runner is None:
            if body != "error":
                self._log.debug("client", f"no feature receives {body} frames; one was dropped")
            if handled is not None:
                handled()
            return
        runner.put("on_frame", functools.partial(runner.feature.on_frame, envelope), handled)

    def connected(self, connected: Connected) -> None:
        """Tell every feature of a new connection."""
        if self._closed:
            return
        self._current = connected
        for runner in self._runners:
            runner.put("on_connected", functools.partial(runner.feature.on_connected, connected))

    def disconnected(self, reason: ParleyError) -> None:
        """Tell every feature the connection they heard of last has ended (once per connection)."""
        if self._closed or self._current is None:
            return
        self._current = None
        for runner in self._runners:
            runner.put("on_disconnected", functools.partial(runner.feature.on_disconnected, reason))

    async def close(self, reason: ParleyError, timeout: float = FEATURE_STOP_TIMEOUT) -> None:
        """Tell every feature, last, that the client is gone (`reason`), whether or not it was
        connected; let each finish what is queued (at most `timeout`); stop their tasks."""
        if self._closed:
            return
        self._current = None
        for runner in self._runners:
            runner.put("on_disconnected", functools.partial(runner.feature.on_disconnected, reason))
        self._closed = True
        # A feature's handler may be what terminates the client: its own task goes on to
        # the end of its queue once the handler returns.
        current = asyncio.current_task()
        tasks = [
            task
            for runner in self._runners
            if (task := runner.finish()) is not None and task is not current
        ]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    def _check(self, feature: Feature, bodies: frozenset[str]) -> None:
        name = feature.name
        if not isinstance(name, str) or not name:
            raise ValueError(f"{type(feature).__name__} has no name")
        for runner in self._runners:
            if runner.feature is feature:
                raise ValueError(f"feature {name!r} was added already")
            if runner.feature.name == name:
                raise ValueError(f"two features are named {name!r}")
        for body in sorted(bodies):
            if body in CLIENT_BODIES:
                raise ValueError(
                    f"{body!r} is a body clients send; feature {name!r} cannot receive it"
                )
            if body not in SERVER_BODIES:
                raise ValueError(f"{body!r} is not a body of parley.v1.Envelope")
            owner = self._by_body.get(body)
            if owner is not None:
                raise ValueError(
                    f"{body!r} frames go to feature {owner.feature.name!r}; "
                    f"feature {name!r} cannot receive them as well"
                )
