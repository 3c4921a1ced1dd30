"""The set that calls listeners of one kind (plain methods or coroutines), in order; and the
serial notices of one subject."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from parley_client.logs import ClientLog

L = TypeVar("L")


class ListenerSet(Generic[L]):
    """Listeners of one kind, called in the order they were added.

    A listener that raises is logged and does not stop the others; `on_error` (if given) is
    told as well, so a caller waiting on the listener can give up.
    """

    def __init__(self, log: ClientLog, area: str) -> None:
        self._listeners: list[L] = []
        self._log = log
        self._area = area

    def add(self, listener: L) -> None:
        if not any(existing is listener for existing in self._listeners):
            self._listeners.append(listener)

    def remove(self, listener: L) -> None:
        self._listeners = [existing for existing in self._listeners if existing is not listener]

    def __iter__(self) -> Iterator[L]:
        return iter(list(self._listeners))

    def __len__(self) -> int:
        return len(self._listeners)

    def implementing(self, method: str, base: type) -> list[L]:
        """Listeners whose `method` is really implemented (not `base`'s no-op default)."""
        default = getattr(base, method, None)
        found = []
        for listener in self._listeners:
            implementation = getattr(type(listener), method, None)
            if implementation is None and callable(getattr(listener, method, None)):
                found.append(listener)  # set on the instance
            elif implementation is not None and implementation is not default:
                found.append(listener)
        return found

    async def emit(
        self,
        method: str,
        *args: object,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        for listener in list(self._listeners):
            function = getattr(listener, method, None)
            if function is None:
                continue
            try:
                result = function(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self._log.error(self._area, f"{type(listener).__name__}.{method} raised {exc!r}")
                if on_error is not None:
                    on_error(exc)


# One notice: a listener call (its coroutine, if it is one, is awaited) or any other step.
Notice = Callable[[], Awaitable[None] | None]


class Notices:
    """Notices of one subject (a call), given one at a time and in order on a task of their
    own, so its listeners hear of it in the order things happened whoever caused them.
    `close()` after the last notice lets the task end."""

    def __init__(self, log: ClientLog, area: str, name: str) -> None:
        self._log = log
        self._area = area
        self._name = name
        self._queue: asyncio.Queue[Notice | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def put(self, notice: Notice) -> None:
        if self._closed:
            return
        self._queue.put_nowait(notice)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    def close(self) -> None:
        """No more notices: the task ends after those queued."""
        if not self._closed:
            self._closed = True
            if self._task is not None:
                self._queue.put_nowait(None)

    async def finish(self, timeout: float) -> None:
        """Close, and wait (at most `timeout`) for the notices queued; then stop."""
        self.close()
        task = self._task
        if task is None or task is asyncio.current_task():
            return
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while (notice := await self._queue.get()) is not None:
            try:
                result = notice()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self._log.error(self._area, f"a notice of {self._name} raised {exc!r}")
