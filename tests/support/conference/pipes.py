"""Requests to a helper process over its stdin/stdout, one JSON object a line.

A request carries `req` (a number) and `op`; the answer carries the same `req` and either
the op's fields or `error`. The helper handles requests concurrently, so answers may come
in another order. What a helper prints otherwise must go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class HelperError(RuntimeError):
    """A request the helper answered with an error, or a helper that went away."""


class Helper:
    """A helper process (`python -m module`) and requests to it."""

    def __init__(self, module: str, env: dict[str, str] | None = None) -> None:
        self.module = module
        self.env = env or {}
        self.proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=16 * 1024 * 1024,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            answer = json.loads(line)
            waiter = self._waiting.pop(answer.pop("req"), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(answer)
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(HelperError(f"{self.module} exited"))

    async def request(self, op: str, timeout: float = 60.0, **fields: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        req = next(self._ids)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[req] = waiter
        self.proc.stdin.write(json.dumps({"req": req, "op": op, **fields}).encode() + b"\n")
        await self.proc.stdin.drain()
        answer = await asyncio.wait_for(waiter, timeout)
        if "error" in answer:
            raise HelperError(f"{self.module} {op}: {answer['error']}")
        return answer

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(HelperError, asyncio.TimeoutError, ConnectionError):
                await self.request("quit", timeout=10)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


async def serve(handle: Handler) -> None:
    """Answer requests from stdin until `quit` (answered with {}) or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    done = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    def answer(req: Any, fields: dict[str, Any]) -> None:
        out.write(json.dumps({"req": req, **fields}).encode() + b"\n")
        out.flush()

    async def one(request: dict[str, Any]) -> None:
        req = request.pop("req")
        try:
            answer(req, await handle(request))
        except Exception as exc:
            answer(req, {"error": f"{type(exc).__name__}: {exc}"})

    while not done.is_set() and (line := await reader.readline()):
        request = json.loads(line)
        if request.get("op") == "quit":
            answer(request["req"], {})
            break
        task = loop.create_task(one(request))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
