"""The thread that owns pjsua2: it pumps ``libHandleEvents`` and runs the commands that
asyncio hands it between pumps. Every pjsua2 object lives and dies on this thread."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("parley_sip.engine")

T = TypeVar("T")

_PUMP_MS = 10


class PjThread:
    """Runs ``setup`` then pumps ``handle_events`` until ``stop`` is asked; ``teardown``
    runs on the thread last. ``submit`` runs a function there and returns its result."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        setup: Callable[[], None],
        handle_events: Callable[[int], None],
        teardown: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._setup = setup
        self._handle_events = handle_events
        self._teardown = teardown
        self._commands: queue.SimpleQueue[_Command | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started: asyncio.Future[None] = loop.create_future()
        self._finished: asyncio.Future[None] = loop.create_future()
        self.ident: int | None = None

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="pjsua", daemon=True)
        self._thread.start()
        await self._started

    def on_thread(self) -> bool:
        return threading.get_ident() == self.ident

    async def submit(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the pjsua thread; its exception is raised here."""
        if self._finished.done() or self._thread is None:
            raise RuntimeError("the SIP engine is not running")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._commands.put(_Command(self, fn, fut))
        return await fut

    def to_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` on the event loop (from any thread; dropped once closed)."""
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass

    async def stop(self) -> None:
        """Ask the thread to tear down and wait for it (idempotent)."""
        if self._thread is None:
            return
        if not self._finished.done():
            self._commands.put(None)
        await asyncio.shield(self._finished)
        await asyncio.to_thread(self._thread.join)

    def _main(self) -> None:
        self.ident = threading.get_ident()
        try:
            self._setup()
        except BaseException as exc:
            log.exception("sip_engine_start_failed")
            self._safe_teardown()
            self.to_loop(_set_exception, self._started, _detached(exc))
            self.to_loop(_set_result, self._finished, None)
            return
        self.to_loop(_set_result, self._started, None)
        try:
            running = True
            while running:
                self._handle_events(_PUMP_MS)
                while True:
                    try:
                        command = self._commands.get_nowait()
                    except queue.Empty:
                        break
                    if command is None:
                        running = False
                        break
                    command.run()
        finally:
            self._safe_teardown()
            # Commands that raced the stop: fail them rather than leave them waiting.
            while True:
                try:
                    command = self._commands.get_nowait()
                except queue.Empty:
                    break
                if command is not None:
                    self.to_loop(
                        _set_exception, command.fut, RuntimeError("the SIP engine stopped")
                    )
            self.to_loop(_set_result, self._finished, None)

    def _safe_teardown(self) -> None:
        try:
            self._teardown()
        except BaseException:
            log.exception("sip_engine_teardown_failed")


class _Command:
    def __init__(self, owner: PjThread, fn: Callable[[], Any], fut: asyncio.Future[Any]) -> None:
        self.owner = owner
        self.fn = fn
        self.fut = fut

    def run(self) -> None:
        try:
            result = self.fn()
        except BaseException as exc:
            self.owner.to_loop(_set_exception, self.fut, _detached(exc))
        else:
            self.owner.to_loop(_set_result, self.fut, result)
        self.fn = _done


def _done() -> None:
    return None


def _detached(exc: BaseException) -> BaseException:
    """The exception without its traceback and chain: their frames hold this thread's
    pjsua2 objects (a call whose dial failed), which must not be freed by the event loop's
    thread while this one runs pjsua (a crash)."""
    exc.__traceback__ = None
    exc.__context__ = None
    exc.__cause__ = None
    return exc


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
