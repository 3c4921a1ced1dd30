"""A small asyncio process supervisor for the services of the embedded stack.

Each child runs in its own process group (so a terminal's Ctrl-C reaches only us, and
stopping a child also stops anything it spawned); its stdout and stderr lines are
forwarded with the service name in front; a child that exits without being asked to is
restarted with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from parley_devstack._proc import parent_death_signal

OutputFn = Callable[[str, str], None]
"""Receives (service name, line without newline)."""

_LINE_LIMIT = 1 << 20
_RECENT_LINES = 200
_STABLE_AFTER = 10.0  # a child that ran this long resets the backoff


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one child. ``env`` is added to our environment unless ``inherit_env`` is
    False. ``restart=False`` leaves a child that exited (or was killed) stopped."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    restart: bool = True
    inherit_env: bool = True
    cwd: str | None = None


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    starts: int
    """How many times the process was started (restarts = starts - 1)."""
    last_exit_code: int | None
    """Exit code of the previous process, negative for a signal (as in subprocess)."""
    recent_output: tuple[str, ...]

    @property
    def restarts(self) -> int:
        return max(0, self.starts - 1)


class _Child:
    def __init__(self, spec: ServiceSpec) -> None:
        self.spec = spec
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self.stop_requested = asyncio.Event()
        self.first_spawn = asyncio.Event()
        self.starts = 0
        self.last_exit_code: int | None = None
        self.exit_code_pending: int | None = None  # exited; output still being read
        self.recent: deque[str] = deque(maxlen=_RECENT_LINES)

    @property
    def running(self) -> bool:
        """Until the exit is fully recorded (output read, exit code set), not after."""
        return self.proc is not None and (
            self.proc.returncode is None or self.exit_code_pending is not None
        )


class Supervisor:
    """Runs named children; see the module docstring.

    ``output`` receives every line (default: ``name | line`` on our stdout).
    """

    def __init__(
        self,
        *,
        output: OutputFn | None = None,
        stop_timeout: float = 30.0,  # longer than a service's drain (20 s by default)
        initial_backoff: float = 0.5,
        max_backoff: float = 10.0,
        name_width: int = 8,
    ) -> None:
        self._output = output or self._print
        self.stop_timeout = stop_timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._children: dict[str, _Child] = {}
        self._width = name_width

    # -- public API ------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self._children)

    async def start(self, spec: ServiceSpec) -> None:
        """Start a child; returns once its first process was spawned (or failed to spawn)."""
        old = self._children.get(spec.name)
        if old is not None and old.task is not None and not old.task.done():
            raise ValueError(f"service {spec.name!r} is already supervised")
        child = _Child(spec)
        self._children[spec.name] = child
        self._width = max(self._width, len(spec.name))
        child.task = asyncio.create_task(self._supervise(child), name=f"supervise-{spec.name}")
        await child.first_spawn.wait()

    async def stop(self, name: str, timeout: float | None = None) -> None:
        """SIGTERM the child's process group, wait up to ``timeout`` (default stop_timeout),
        then SIGKILL it. No restart follows."""
        child = self._children[name]
        child.stopping = True
        child.stop_requested.set()
        task = child.task
        if task is None or task.done():
            return
        self._signal_group(child, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout or self.stop_timeout)
        except TimeoutError:
            self._emit(
                child,
                f"[supervisor] still running after {timeout or self.stop_timeout:g} s; killing",
            )
            self._signal_group(child, signal.SIGKILL)
            await task

    async def stop_all(self, timeout: float | None = None) -> None:
        await asyncio.gather(*(self.stop(name, timeout) for name in self._children))

    def kill(self, name: str, sig: int = signal.SIGKILL) -> bool:
        """Send ``sig`` to the child's process group, as a crash would; the restart policy of
        its spec applies. Returns False if it was not running."""
        return self._signal_group(self._children[name], sig)

    def status(self, name: str) -> ServiceStatus:
        child = self._children[name]
        return ServiceStatus(
            name=name,
            running=child.running,
            pid=child.proc.pid if child.proc is not None and child.running else None,
            starts=child.starts,
            last_exit_code=child.last_exit_code,
            recent_output=tuple(child.recent),
        )

    async def run_until_signal(
        self, signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM)
    ) -> signal.Signals:
        """Supervise until one of ``signals`` arrives, then stop every child."""
        stop = asyncio.Event()
        received: list[signal.Signals] = []
        with shutdown_signals(stop, signals, received):
            await stop.wait()
        await self.stop_all()
        return received[0]

    # -- internals -------------------------------------------------------------------------

    async def _supervise(self, child: _Child) -> None:
        spec = child.spec
        delay = self.initial_backoff
        env = {**os.environ, **spec.env} if spec.inherit_env else dict(spec.env)
        try:
            while True:
                started = time.monotonic()
                code = await self._run_once(child, env)
                child.last_exit_code = code
                child.exit_code_pending = None
                if child.stopping:
                    self._emit(child, f"[supervisor] stopped (exit code {code})")
                    return
                if not spec.restart:
                    self._emit(child, f"[supervisor] exited with code {code}; not restarting")
                    return
                if time.monotonic() - started >= _STABLE_AFTER:
                    delay = self.initial_backoff
                self._emit(
                    child, f"[supervisor] exited with code {code}; restarting in {delay:g} s"
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.stop_requested.wait(), delay)
                if child.stopping:
                    return
                delay = min(delay * 2, self.max_backoff)
        finally:
            child.first_spawn.set()

    async def _run_once(self, child: _Child, env: Mapping[str, str]) -> int | None:
        spec = child.spec
        try:
            proc = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=dict(env),
                cwd=spec.cwd,
                start_new_session=True,
                preexec_fn=parent_death_signal(signal.SIGTERM),
                limit=_LINE_LIMIT,
            )
        except OSError as exc:
            self._emit(child, f"[supervisor] cannot start {spec.argv[0]}: {exc}")
            child.first_spawn.set()
            return None
        child.proc = proc
        child.starts += 1
        child.first_spawn.set()
        if child.stopping:  # stop() came while we were spawning
            self._signal_group(child, signal.SIGTERM)
        assert proc.stdout is not None
        pump = asyncio.create_task(self._pump(child, proc.stdout))
        try:
            code = await proc.wait()
            child.exit_code_pending = code
        finally:
            # Whatever the child left in its process group goes with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                await asyncio.wait_for(pump, 2.0)
            except TimeoutError:
                pass
        return code

    async def _pump(self, child: _Child, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line over the limit: dropped by the reader
                raw = b"[supervisor] (over-long output line dropped)\n"
            except (OSError, asyncio.IncompleteReadError):
                return
            if not raw:
                return
            self._emit(child, raw.decode(errors="replace").rstrip("\r\n"))

    def _signal_group(self, child: _Child, sig: int) -> bool:
        proc = child.proc
        if proc is None or proc.returncode is not None:
            return False
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def _emit(self, child: _Child, line: str, *, note: bool = True) -> None:
        if note:
            child.recent.append(line)
        self._output(child.spec.name, line)

    def _print(self, name: str, line: str) -> None:
        sys.stdout.write(f"{name:<{self._width}} | {line}\n")
        sys.stdout.flush()


@contextlib.contextmanager
def shutdown_signals(
    event: asyncio.Event,
    signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
    received: list[signal.Signals] | None = None,
) -> Iterator[None]:
    """Within the block, the first of ``signals`` sets ``event`` (on the running loop)."""
    loop = asyncio.get_running_loop()
    sigs = list(signals)

    def _handler(sig: signal.Signals) -> None:
        if received is not None:
            received.append(sig)
        event.set()

    for sig in sigs:
        loop.add_signal_handler(sig, _handler, sig)
    try:
        yield
    finally:
        for sig in sigs:
            loop.remove_signal_handler(sig)
