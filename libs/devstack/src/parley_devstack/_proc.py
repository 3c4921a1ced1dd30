"""Process helpers shared by the embedded servers and the supervisor (internal)."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

_PR_SET_PDEATHSIG = 1


def parent_death_signal(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when its parent dies (Linux).

    This is the safety net that keeps servers and services from outliving a ``make run``
    or a test session that was killed hard (SIGKILL, OOM). Linux delivers the signal when
    the *thread* that forked the child exits, so spawn from the event-loop (main) thread.
    Returns None on other platforms.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    signum = int(sig)

    def _preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)

    return _preexec


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (even if owned by another user) and is not a
    zombie (a dead process its parent has not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # Format: "pid (comm) state ...", and comm may contain spaces or parentheses.
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] != "Z"


def proc_cmdline(pid: int) -> list[str] | None:
    """The command line of ``pid`` on Linux, or None if unknown."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def tail(path: Path, start: int = 0, max_bytes: int = 4000) -> str:
    """The last ``max_bytes`` of ``path`` written after offset ``start`` (for error messages)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(start, size - max_bytes))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""


async def poll_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Await until ``predicate()`` is true (True) or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


class ServerProcess:
    """What the embedded servers share: one child process, `pid`, `running`, and use as an
    async context manager (start on entry, stop on exit). Subclasses define start/stop."""

    _proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> bool:
        """SIGKILL the server, as a crash would (its data stays); False if it was not running.
        `start()` brings it back on the same address."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return False
        proc.kill()
        proc.wait()
        self._proc = None
        return True

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
