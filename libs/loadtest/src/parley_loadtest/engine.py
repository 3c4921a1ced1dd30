"""The engine: spawns the worker processes, hands each its plan, collects their events into
a Tally, runs the phases (ramp-up, traffic, a storm's kill, grace) and returns the run's
figures. Used by the `parley-loadtest` command and by tests (which kill a replica with their
own handle: `kill=`)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import multiprocessing as mp
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from parley_loadtest import events as ev
from parley_loadtest.clients import ClientSettings
from parley_loadtest.plan import Plan, make_plan
from parley_loadtest.scenario import Kill, Scenario
from parley_loadtest.tally import Tally
from parley_loadtest.worker import worker_main

KillHook = Callable[[], Awaitable[None] | None]
Progress = Callable[["Run"], None]

TICK_SECONDS = 0.25
# Waits for a step of every worker; a worker slower than this is reported, not waited for.
RAMP_TIMEOUT_FLOOR = 60.0
FINAL_TIMEOUT = 90.0


class EngineError(Exception):
    """The run could not go on (a worker died, a step timed out); the message says which."""


@dataclass
class _WorkerHandle:
    index: int
    process: Any  # multiprocessing.Process of the spawn context
    conn: Connection
    steps: dict[str, Any] = field(default_factory=dict)  # step -> its payload
    gone: bool = False


@dataclass
class Run:
    """A run in progress: what the progress display reads."""

    run_id: str
    scenario: Scenario
    plan: Plan
    tally: Tally
    phase: str = "starting workers"
    traffic_started_at: float | None = None
    finished_at: float | None = None


def new_run_id() -> str:
    return uuid.uuid4().hex[:10]


def client_settings(scenario: Scenario) -> ClientSettings:
    target = scenario.target
    addresses: tuple[str, ...] | None = tuple(target.ice_host_addresses) or None
    if addresses is None and all(_local(h) for h in target.hosts):
        addresses = ("127.0.0.1",)
    return ClientSettings(
        application_key=target.application_key,
        application_secret=target.application_secret,
        hosts=tuple(target.hosts),
        state_dir=str(scenario.state_path),
        ice_host_addresses=addresses,
    )


def _local(host: str) -> bool:
    name = urlsplit(host if "//" in host else f"//{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Engine:
    def __init__(
        self,
        scenario: Scenario,
        *,
        kill: KillHook | None = None,
        progress: Progress | None = None,
        run_id: str | None = None,
    ) -> None:
        self.scenario = scenario
        self._kill_hook = kill
        self._progress = progress
        run_id = run_id or new_run_id()
        self.run = Run(run_id, scenario, make_plan(scenario, run_id), Tally(time.time()))
        self._workers: list[_WorkerHandle] = []
        self._step_changed = asyncio.Event()

    @property
    def tally(self) -> Tally:
        return self.run.tally

    # -- workers -----------------------------------------------------------------------------

    def _spawn(self) -> None:
        ctx = mp.get_context("spawn")
        settings = client_settings(self.scenario)
        Path(settings.state_dir).mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        for plan in self.run.plan.workers:
            parent, child = ctx.Pipe()
            process = ctx.Process(
                target=worker_main,
                args=(plan, self.scenario, settings, child),
                name=f"parley-loadtest-worker-{plan.index}",
                daemon=True,
            )
            process.start()
            child.close()
            handle = _WorkerHandle(plan.index, process, parent)
            self._workers.append(handle)
            loop.add_reader(parent.fileno(), self._on_message, handle)

    def _on_message(self, handle: _WorkerHandle) -> None:
        try:
            message = handle.conn.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(handle.conn.fileno())
            handle.gone = True
            if ev.FINAL not in handle.steps:
                self.tally.error(time.time(), "engine", f"worker {handle.index} exited early")
            self._changed()
            return
        step = message[0]
        if step == ev.EVENTS:
            for event in message[1]:
                self.tally.add(event)
        else:
            handle.steps[step] = message[1] if len(message) > 1 else True
            self._changed()

    def _changed(self) -> None:
        self._step_changed.set()
        self._step_changed = asyncio.Event()

    async def _all(self, step: str, timeout: float) -> None:
        """Wait until every worker took `step` (or is gone); EngineError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            waiting = [w for w in self._workers if step not in w.steps and not w.gone]
            if not waiting:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                names = ", ".join(str(w.index) for w in waiting)
                raise EngineError(f"workers {names} did not finish {step!r} in {timeout:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._step_changed.wait(), min(left, 1.0))
        lost = [w.index for w in self._workers if w.gone and step not in w.steps]
        if lost and step != ev.FINAL:
            raise EngineError(f"worker(s) {lost} exited before {step!r} (see errors)")

    def _send(self, *order: Any) -> None:
        for worker in self._workers:
            if not worker.gone:
                with contextlib.suppress(OSError):
                    worker.conn.send(order)

    async def _ticker(self) -> None:
        while True:
            self.tally.tick(time.time())
            if self._progress is not None:
                self._progress(self.run)
            await asyncio.sleep(TICK_SECONDS)

    # -- the run -----------------------------------------------------------------------------

    async def execute(self) -> Run:
        """Run the scenario to the end; the Run holds the tally. EngineError if it broke."""
        scenario, run = self.scenario, self.run
        ticker = asyncio.create_task(self._ticker())
        try:
            self._spawn()
            run.phase = "ramp-up"
            ramp = scenario.users / scenario.ramp_up_per_second
            await self._all(ev.RAMPED, ramp * 2 + RAMP_TIMEOUT_FLOOR)
            now = time.time()
            self.tally.mark(now, "ramp-up done")
            t0 = now + 0.5
            run.traffic_started_at = t0
            run.phase = "traffic"
            self._send(ev.GO, t0)
            self.tally.mark(t0, "traffic")
            storm = asyncio.create_task(self._storm(t0)) if scenario.storm.enabled else None
            slowest = max(
                scenario.calls.timeout_seconds + scenario.calls.hold_seconds,
                scenario.conferences.timeout_seconds + scenario.conferences.hold_seconds,
                scenario.phone_calls.timeout_seconds + scenario.phone_calls.hold_seconds,
            )
            await self._all(ev.TRAFFIC_DONE, scenario.duration_seconds + slowest + 60)
            if storm is not None:
                await storm
            self.tally.mark(time.time(), "traffic done")
            run.phase = "grace"
            deadline = time.monotonic() + scenario.grace_seconds
            while self.tally.pending_messages() and time.monotonic() < deadline:  # noqa: ASYNC110 (the tally is plain data, polled)
                await asyncio.sleep(0.1)
            run.phase = "stopping"
            self._send(ev.STOP)
            await self._all(ev.FINAL, FINAL_TIMEOUT)
            not_connected: list[str] = []
            for worker in self._workers:
                final = worker.steps.get(ev.FINAL)
                if isinstance(final, dict):
                    not_connected.extend(final["not_connected"])
            self.tally.not_connected_at_end = not_connected
            run.finished_at = time.time()
            run.phase = "done"
            return run
        finally:
            ticker.cancel()
            self.tally.tick(time.time())
            await self._stop_workers()

    async def _storm(self, t0: float) -> None:
        scenario, tally = self.scenario, self.tally
        await asyncio.sleep(max(0.0, t0 + scenario.storm.after_seconds - time.time()))
        self.run.phase = "storm: killing a replica"
        tally.storm_kill(time.time())
        try:
            await kill_replica(scenario.storm.kill, self._kill_hook)
        except Exception as exc:  # the storm did not happen; said in the report
            tally.kill_error = ev.describe(exc)
            tally.error(time.time(), "storm", f"the kill failed: {tally.kill_error}")
        tally.kill_done_at = time.time()
        self.run.phase = "storm: reconnecting"
        deadline = tally.kill_at + scenario.storm.timeout_seconds if tally.kill_at else 0.0
        while not tally.kill_error and time.time() < deadline and not tally.storm_settled():  # noqa: ASYNC110 (the tally is plain data, polled)
            await asyncio.sleep(0.05)
        tally.storm_end(time.time())
        self.run.phase = "traffic"

    async def _stop_workers(self) -> None:
        self._send(ev.STOP)  # a worker still waiting for an order stops (a repeat is ignored)
        loop = asyncio.get_running_loop()
        for worker in self._workers:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(worker.conn.fileno())
        for worker in self._workers:
            await asyncio.to_thread(worker.process.join, 30)
            if worker.process.is_alive():
                worker.process.terminate()
                await asyncio.to_thread(worker.process.join, 5)
            worker.conn.close()


async def kill_replica(kill: Kill, hook: KillHook | None) -> None:
    """Kill the gateway replica: the caller's hook, else the shell command (its exit status
    must be 0), else SIGKILL to the process in the pid file."""
    if hook is not None:
        result = hook()
        if inspect.isawaitable(result):
            await result
        return
    if kill.command:
        process = await asyncio.create_subprocess_shell(
            kill.command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            text = output.decode(errors="replace").strip()[-300:]
            raise RuntimeError(f"{kill.command!r} exited with {process.returncode}: {text}")
        return
    if kill.pid_file:
        text = (await asyncio.to_thread(_read_text, kill.pid_file)).strip()
        try:
            pid = int(text.split()[0])
        except (ValueError, IndexError):
            raise RuntimeError(f"{kill.pid_file} holds no process id: {text[:40]!r}") from None
        os.kill(pid, signal.SIGKILL)
        return
    raise RuntimeError("no way to kill a replica was given (storm.kill)")


def _read_text(path: str) -> str:
    return Path(path).expanduser().read_text()


async def run_scenario(
    scenario: Scenario,
    *,
    kill: KillHook | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> Run:
    """Run `scenario` (already validated) and return the finished Run."""
    return await Engine(scenario, kill=kill, progress=progress, run_id=run_id).execute()
