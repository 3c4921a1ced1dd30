"""The client's log: Python `logging` under "parley_client.<area>", and `on_log_message`."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

_logger = logging.getLogger("parley_client")
# A library leaves output to the app's logging setup (no "last resort" printing to stderr).
_logger.addHandler(logging.NullHandler())


class ClientLog:
    """Fans one log line out to `logging` and to every listener's `on_log_message`.

    Log lines never carry secrets: not the application secret, the device credential's
    secret, nor access tokens.
    """

    def __init__(self, listeners: Callable[[], Iterable[object]]) -> None:
        self._listeners = listeners
        self._tasks: set[asyncio.Task[Any]] = set()

    def log(self, level: int, area: str, message: str) -> None:
        _logger.getChild(area).log(level, message)
        for listener in list(self._listeners()):
            method = getattr(listener, "on_log_message", None)
            if method is None:
                continue
            try:
                result = method(level, area, message)
            except Exception:
                _logger.exception("on_log_message of %r raised", listener)
                continue
            if inspect.isawaitable(result):
                self._schedule(listener, result)

    def area(self, area: str) -> AreaLog:
        """This log with every line under `area` (a feature's log)."""
        return AreaLog(self, area)

    def debug(self, area: str, message: str) -> None:
        self.log(logging.DEBUG, area, message)

    def info(self, area: str, message: str) -> None:
        self.log(logging.INFO, area, message)

    def warning(self, area: str, message: str) -> None:
        self.log(logging.WARNING, area, message)

    def error(self, area: str, message: str) -> None:
        self.log(logging.ERROR, area, message)

    def _schedule(self, listener: object, awaitable: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            _logger.warning("on_log_message of %r is a coroutine but no loop runs", listener)
            return

        async def run() -> None:
            try:
                await awaitable
            except Exception:
                _logger.exception("on_log_message of %r raised", listener)

        task = loop.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Wait for coroutine log listeners still running."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class AreaLog:
    """A `ClientLog` bound to one area, so a feature logs under its own name."""

    def __init__(self, log: ClientLog, area: str) -> None:
        self._log = log
        self.area = area

    def log(self, level: int, message: str) -> None:
        self._log.log(level, self.area, message)

    def debug(self, message: str) -> None:
        self._log.log(logging.DEBUG, self.area, message)

    def info(self, message: str) -> None:
        self._log.log(logging.INFO, self.area, message)

    def warning(self, message: str) -> None:
        self._log.log(logging.WARNING, self.area, message)

    def error(self, message: str) -> None:
        self._log.log(logging.ERROR, self.area, message)
