"""Run the far phone (``tests.support.sip.phone``) as a process from a test."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from parley_devstack._proc import parent_death_signal
from tests.support.lifecycle import Started

ROOT = Path(__file__).resolve().parents[3]


class PhoneProcess(Started):
    """``async with PhoneProcess("--answer", "--tone", "1000") as phone``: ``phone.port``
    is its SIP port once it is ready; ``await phone.result()`` is its JSON report."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None

    def uri(self, user: str = "phone") -> str:
        return f"sip:{user}@127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.sip.phone",
            *self.args,
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=parent_death_signal(signal.SIGKILL),
        )
        ready = await self._line(15)
        self.port = int(ready["port"])

    async def _line(self, timeout: float) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(proc.stdout.readline(), timeout)
            if not raw:
                err = b""
                if proc.stderr is not None:
                    err = await proc.stderr.read()
                raise RuntimeError(f"the phone exited: {err.decode(errors='replace')[-2000:]}")
            text = raw.decode(errors="replace").strip()
            if text.startswith("{"):
                line: dict[str, Any] = json.loads(text)
                return line

    async def result(self, timeout: float = 30.0) -> dict[str, Any]:
        """The phone's report (it exits right after)."""
        report = await self._line(timeout)
        assert self._proc is not None
        await asyncio.wait_for(self._proc.wait(), 10)
        return report

    async def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.kill()
        await proc.wait()
