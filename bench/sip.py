"""Calls to phones through the sip service: set-up latency and rate, and how many bridged
calls with real audio the machine carries, on one sip process and on several.

Starts NATS and PostgreSQL (embedded), auth, one gateway, the calls service and one sip
process (the DevStack of `make run`, free ports, temp dir), and sipp on a free UDP port as
the carrier trunk: it answers every INVITE and echoes the RTP it gets, so what a client
hears from the phone is its own tone come back (client -> WebRTC -> sip process -> SIP/PCMU
-> sipp -> back). Phone numbers of +1 get a rate and the sandbox app credit, as
`parley-admin rates-set` and `credits-topup` would. Reference clients with real media
(aiortc, ICE on loopback) run in this process, one a call, each sending its own tone.

1. Concurrency: calls are added one level at a time and held; at each level, after a settle
   time, a window of audio is read from every call: frames missing (RTP timestamps that
   skip), frames late (more than 60 ms after the one before) and silent frames count as
   gaps, and each call must hear its own frequency (another call's tone would show). First
   on one sip process until a call is refused (the calls one process holds: pjsua2 caps a
   process at PJSUA_MAX_CALLS), then on 2, 4, 8 ... processes (a full process leaves the
   dial queue group, so the others take the new calls), until a level has gaps twice in a
   row, a call fails, or --max-processes is reached. CPU of the sip processes per call, and
   of the clients (this process), sipp and the rest, from /proc.
2. Set-up: call_phone_number -> established, calls one after another, then in bursts; then
   calls at increasing rates, each hung up after --hold-seconds: the highest rate at which
   at least 99 % were established.

Prints the figures, then one JSON line.

    .venv/bin/python bench/sip.py [--max-processes K] [--sequential N] [--burst B] ...
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from measure import cpu_seconds, percentile, tree_cpu_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

import numpy as np
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from parley_client import Call, ParleyClient, ParleyError, ToneSource
from parley_devstack.ports import free_port
from parley_devstack.services import ServiceDef
from parley_devstack.stack import DevStack, ServicePorts, StackSettings, http_status
from tests.support.media import dominant_hz, rms
from tests.support.sip.sipp import Sipp, free_udp_port

QUIET = {"PARLEY_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING")}
RATE_PREFIX = "+1"
RATE_PER_MINUTE = "0.01"
CREDIT = "1000"
# Client tones: far enough apart that a call hearing another call's tone is told apart, all
# within what PCMU carries.
TONE_BASE_HZ = 400.0
TONE_STEP_HZ = 50.0
TONE_TOLERANCE_HZ = 10.0
HEARD_MIN_RMS = 0.02
FRAME_SECONDS = 0.020
LATE_SECONDS = 0.060
SILENT_RMS = 0.005
RTP_WRAP = 2**32
ESTABLISH_TIMEOUT = 20.0
# The message of the first set-up error of each code (printed once, to tell causes apart).
FIRST_ERRORS: dict[str, str] = {}
END_TIMEOUT = 10.0


def number(index: int) -> str:
    return f"+1415{index % 10_000_000:07d}"


def tone(index: int) -> float:
    return TONE_BASE_HZ + TONE_STEP_HZ * index


# -- the stack ---------------------------------------------------------------------------


def service(name: str, module: str, **extra: Any) -> ServiceDef:
    env = {**QUIET, **extra.pop("env", {})}
    return ServiceDef(name=name, module=module, health_port=0, env=env, restart=False, **extra)


def sip_service(index: int, trunk_port: int) -> ServiceDef:
    return service(
        f"sip-{index}",
        "parley_sip",
        env={
            "PARLEY_SIP_TRUNK_HOST": "127.0.0.1",
            "PARLEY_SIP_TRUNK_PORT": str(trunk_port),
            "PARLEY_SIP_CALLER_ID": "+15550001111",
            "PARLEY_SIP_ICE_HOST_ADDRESSES": "127.0.0.1",
        },
    )


async def add_service(stack: DevStack, definition: ServiceDef, timeout: float = 60.0) -> None:
    """Start one more service under the running stack's supervisor; wait for its /readyz."""
    health = free_port()
    stack.services.append(definition)
    stack.ports[definition.name] = ServicePorts(health=health, public=None)
    await stack.supervisor.start(stack._spec(definition))
    deadline = time.monotonic() + timeout
    while await http_status(health, "/readyz") != 200:
        status = stack.supervisor.status(definition.name)
        if not status.running or time.monotonic() > deadline:
            last = "\n  ".join(status.recent_output[-10:])
            raise RuntimeError(f"{definition.name} did not become ready:\n  {last}")
        await asyncio.sleep(0.2)


@dataclass
class Bench:
    stack: DevStack
    home: Path
    trunk: Sipp
    args: argparse.Namespace
    sip_names: list[str] = field(default_factory=list)
    clients: list[ParleyClient] = field(default_factory=list)
    sip_pids: list[int] = field(default_factory=list)  # of every sip process ever started
    last_cpu: dict[int, float] = field(default_factory=dict)
    lag: float = 0.0  # the longest this process's event loop was late since last asked

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.stack.ports['gateway'].public}"

    async def client(self, index: int) -> ParleyClient:
        """The index-th client (made and started on first use), sending tone(index)."""
        while len(self.clients) <= index:
            n = len(self.clients)
            app = self.stack.sandbox_app
            client = (
                ParleyClient.builder()
                .application_key(app["application_key"])
                .application_secret(app["application_secret"])
                .user_id(f"bench caller {n}")
                .environment_hosts([self.host])
                .persistence_dir(self.home / "clients" / str(n))
                .ice_host_addresses(["127.0.0.1"])
                .build()
            )
            client.set_support_calling(True)
            client.audio_controller.set_source(ToneSource(tone(n)))
            self.clients.append(client)
            await client.start()
        return self.clients[index]

    async def add_sip(self) -> None:
        index = len(self.sip_names) + 1
        definition = sip_service(index, self.trunk.port)
        await add_service(self.stack, definition)
        self.sip_names.append(definition.name)
        pid = self.stack.supervisor.status(definition.name).pid
        if pid:
            self.sip_pids.append(pid)

    def dead(self) -> list[str]:
        """Services that exited, each with its last lines of output."""
        found = []
        for name in self.stack.supervisor.names:
            status = self.stack.supervisor.status(name)
            if not status.running:
                last = "\n    ".join(status.recent_output[-15:])
                found.append(f"{name} exited ({status.last_exit_code}):\n    {last}")
        return found

    async def watch_lag(self) -> None:
        """How late this process's event loop wakes (the clients' audio runs in it)."""
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            self.lag = max(self.lag, time.perf_counter() - before - 0.01)

    def pids(self) -> dict[str, list[int]]:
        def pid(name: str) -> int | None:
            return self.stack.supervisor.status(name).pid

        groups: dict[str, list[int | None]] = {
            "sip": list(self.sip_pids),
            "clients": [os.getpid()],
            "sipp": [self.trunk._proc.pid if self.trunk._proc is not None else None],
            "gateway": [pid("gateway")],
            "calls": [pid("calls")],
            "auth": [pid("auth")],
            "nats": [self.stack.nats.pid if self.stack.nats is not None else None],
        }
        return {k: [p for p in v if p] for k, v in groups.items()}

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each group of processes."""
        found: dict[str, float] = {}
        for group, pids in self.pids().items():
            total = 0.0
            for p in pids:
                try:
                    self.last_cpu[p] = cpu_seconds(p)
                except OSError:
                    pass  # gone: its last reading
                total += self.last_cpu.get(p, 0.0)
            found[group] = total
        postgres = self.stack.postgres
        if postgres is not None and postgres.pid is not None:
            found["postgres"] = tree_cpu_seconds(postgres.pid)
        return found


# -- the audio of one call ---------------------------------------------------------------


class Ear:
    """Reads a call's remote audio from the moment it is established: when each frame
    arrived, its RTP time stamp and level, and the last second of samples."""

    def __init__(self, call: Call, hz: float) -> None:
        self.call = call
        self.hz = hz
        self.frames: list[tuple[float, int, int, float]] = []  # arrived, pts, samples, rms
        self.recent: collections.deque[np.ndarray[Any, Any]] = collections.deque(maxlen=50)
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        track = self.call.remote_audio_track
        if track is None:
            return
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arrived = time.perf_counter()
            if not isinstance(frame, AudioFrame):
                continue
            samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
            x = samples.astype(np.float64) / 32768
            self.recent.append(x)
            level = float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
            self.frames.append((arrived, int(frame.pts or 0), len(x), level))

    def window(self, start: float, end: float) -> dict[str, Any]:
        """Gaps within [start, end): frames missing, late and silent; the tone heard."""
        missing = late = silent = received = 0
        previous: tuple[float, int, int, float] | None = None
        for frame in self.frames:
            arrived, pts, samples, level = frame
            if arrived >= end:
                break
            if arrived >= start:
                received += 1
                if previous is not None:
                    step = (pts - previous[1]) % RTP_WRAP
                    if samples and step > previous[2]:
                        missing += round(step / previous[2]) - 1
                    if arrived - previous[0] > LATE_SECONDS:
                        late += 1
                if level < SILENT_RMS:
                    silent += 1
            previous = frame
        if previous is None or end - previous[0] > LATE_SECONDS:
            late += 1  # nothing came at the end of the window
        if received == 0:
            missing += round((end - start) / FRAME_SECONDS)
        heard = np.concatenate(list(self.recent)) if self.recent else np.zeros(960)
        hz = dominant_hz(heard)
        level = rms(heard)
        own = abs(hz - self.hz) <= TONE_TOLERANCE_HZ and level > HEARD_MIN_RMS
        return {
            "received": received,
            "missing": missing,
            "late": late,
            "silent": silent,
            "heard_hz": round(hz, 1),
            "own_tone": own,
        }

    async def stop(self) -> None:
        """Once the call has ended its track ends, and so does the reading (cancelled only
        when it does not: a read cut short leaves the track's own read behind)."""
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 5)
        except TimeoutError:
            self.task.cancel()


@dataclass
class Live:
    call: Call
    ear: Ear


async def place(bench: Bench, index: int) -> tuple[Live | None, str]:
    """A call from the index-th client, established with its audio read; or why not."""
    client = await bench.client(index)
    call = client.call_client.call_phone_number(number(index))
    try:
        await call.wait_established(ESTABLISH_TIMEOUT)
    except ParleyError as exc:
        return None, exc.code
    return Live(call, Ear(call, tone(index))), ""


async def hang_up(lives: list[Live]) -> None:
    async def one(live: Live) -> None:
        try:
            await live.call.hangup()
            await live.call.wait_ended(END_TIMEOUT)
        except ParleyError:
            pass
        await live.ear.stop()

    await asyncio.gather(*(one(live) for live in lives))


# -- 1. concurrency ----------------------------------------------------------------------


async def measure_level(bench: Bench, lives: list[Live]) -> dict[str, Any]:
    args = bench.args
    await asyncio.sleep(args.settle)
    cpu_before = bench.cpu()
    bench.lag = 0.0
    start = time.perf_counter()
    await asyncio.sleep(args.window)
    end = time.perf_counter()
    cpu_after = bench.cpu()
    seconds = end - start
    per_call = [live.ear.window(start, end) for live in lives]
    calls = len(lives)
    cores = {k: round((cpu_after[k] - cpu_before.get(k, 0.0)) / seconds, 3) for k in cpu_after}
    return {
        "calls": calls,
        "sip_processes": len(bench.sip_names),
        "missing": sum(c["missing"] for c in per_call),
        "late": sum(c["late"] for c in per_call),
        "silent": sum(c["silent"] for c in per_call),
        "wrong_tone": sum(not c["own_tone"] for c in per_call),
        "wrong_tone_heard_hz": [c["heard_hz"] for c in per_call if not c["own_tone"]][:5],
        "client_loop_lag_ms_max": round(bench.lag * 1000, 1),
        "frames_per_call_second": round(sum(c["received"] for c in per_call) / calls / seconds, 1),
        "cpu_cores": cores,
        "sip_cpu_ms_per_call_second": round(cores["sip"] * 1000 / calls, 1),
        "client_cpu_ms_per_call_second": round(cores["clients"] * 1000 / calls, 1),
    }


def clean(level: dict[str, Any]) -> bool:
    return bool(level["missing"] + level["late"] + level["silent"] + level["wrong_tone"] == 0)


def show_level(level: dict[str, Any]) -> None:
    cores = level["cpu_cores"]
    print(
        f"  {level['calls']:3d} calls on {level['sip_processes']} sip: "
        f"missing {level['missing']} late {level['late']} silent {level['silent']} "
        f"wrong tone {level['wrong_tone']} {level['wrong_tone_heard_hz'] or ''}| "
        f"{level['frames_per_call_second']} frames/s a call, client loop late "
        f"{level['client_loop_lag_ms_max']} ms at most | cores: sip {cores['sip']:.2f} "
        f"clients {cores['clients']:.2f} sipp {cores['sipp']:.2f} rest "
        f"{sum(v for k, v in cores.items() if k not in ('sip', 'clients', 'sipp')):.2f} | "
        f"sip {level['sip_cpu_ms_per_call_second']} ms, clients "
        f"{level['client_cpu_ms_per_call_second']} ms CPU per call-second",
        flush=True,
    )


async def concurrency(bench: Bench) -> dict[str, Any]:
    args = bench.args
    lives: list[Live] = []
    levels: list[dict[str, Any]] = []
    per_process: int | None = None
    refusal = ""
    saturated = False
    best_one = 0
    best: dict[str, Any] | None = None

    async def grow_to(target: int) -> str:
        """Add calls (at once) up to `target`; the first failure's code, or ""."""
        placed = await asyncio.gather(*(place(bench, i) for i in range(len(lives), target)))
        failure = ""
        for live, code in placed:
            if live is not None:
                lives.append(live)
            else:
                failure = failure or code
        return failure

    async def measured() -> dict[str, Any]:
        level = await measure_level(bench, lives)
        show_level(level)
        if not clean(level):  # one more window: a gap must show twice to count
            again = await measure_level(bench, lives)
            show_level(again)
            level["again"] = again
            level["clean"] = clean(again)
        else:
            level["clean"] = True
        levels.append(level)
        return level

    try:
        print("concurrency on one sip process:", flush=True)
        target = 0
        while per_process is None:
            target += 1
            failure = await grow_to(target)
            if failure:
                per_process, refusal = len(lives), failure
                print(f"  call {target} refused ({failure}): one process holds {per_process}")
                break
            level = await measured()
            if not level["clean"]:
                saturated = True
                break
            best_one = best_one if best_one >= target else target
            best = level
            if target >= args.max_level_one:
                break
        processes = 1
        while not saturated and per_process and processes * 2 <= args.max_processes:
            while len(bench.sip_names) < processes * 2:
                await bench.add_sip()
            processes = len(bench.sip_names)
            capacity = per_process * processes
            step = max(1, processes // 2)
            targets = sorted({*range(len(lives) + step, capacity, step), capacity})
            print(f"concurrency on {processes} sip processes (room for {capacity}):", flush=True)
            for target in targets:
                failure = await grow_to(target)
                if failure:
                    print(f"  call {len(lives) + 1} failed ({failure})", flush=True)
                    saturated = True
                    break
                level = await measured()
                if not level["clean"]:
                    saturated = True
                    break
                best = level
    finally:
        await hang_up(lives)
    return {
        "per_process": per_process,
        "refusal": refusal,
        "best_one": best_one,
        "best": best,
        "levels": levels,
    }


# -- 2. set-up ---------------------------------------------------------------------------


async def setup_once(bench: Bench, index: int, client_index: int, hold: float) -> float | str:
    """One call: seconds call_phone_number -> established (then held, hung up), or why not."""
    client = await bench.client(client_index)
    began = time.perf_counter()
    call = client.call_client.call_phone_number(number(index))
    try:
        await call.wait_established(ESTABLISH_TIMEOUT)
        took = time.perf_counter() - began
        await asyncio.sleep(hold)
        await call.hangup()
        await call.wait_ended(END_TIMEOUT)
        return took
    except ParleyError as exc:
        call.hangup()
        if exc.code not in FIRST_ERRORS:
            FIRST_ERRORS[exc.code] = exc.message
            print(f"  first {exc.code} of a set-up: {exc.message}", flush=True)
        return exc.code


def summary(results: list[float | str]) -> dict[str, Any]:
    took = [r for r in results if isinstance(r, float)]
    errors = [r for r in results if not isinstance(r, float)]
    return {
        "calls": len(results),
        "established": len(took),
        "p50_ms": round(percentile(took, 50) * 1000, 1),
        "p90_ms": round(percentile(took, 90) * 1000, 1),
        "p99_ms": round(percentile(took, 99) * 1000, 1),
        "max_ms": round(max(took) * 1000, 1) if took else float("nan"),
        "errors": dict(collections.Counter(errors)),
        "samples": took,
    }


async def setup(bench: Bench, room: int) -> dict[str, Any]:
    args = bench.args
    counter = 0

    def next_number() -> int:
        nonlocal counter
        counter += 1
        return counter

    sequential: list[float | str] = []
    for _ in range(args.sequential):
        sequential.append(await setup_once(bench, next_number(), 0, 0.0))
    seq = summary(sequential)
    print(
        f"set-up, one after another: {seq['established']}/{seq['calls']} p50 {seq['p50_ms']} "
        f"p90 {seq['p90_ms']} p99 {seq['p99_ms']} max {seq['max_ms']} ms {seq['errors'] or ''}",
        flush=True,
    )
    size = min(args.burst, room)
    bursts: list[float | str] = []
    for _ in range(args.bursts):
        bursts += await asyncio.gather(
            *(setup_once(bench, next_number(), i, 0.0) for i in range(size))
        )
    bur = summary(bursts)
    print(
        f"set-up, {args.bursts} bursts of {size}: {bur['established']}/{bur['calls']} "
        f"p50 {bur['p50_ms']} p90 {bur['p90_ms']} p99 {bur['p99_ms']} max {bur['max_ms']} ms "
        f"{bur['errors'] or ''}",
        flush=True,
    )
    rates: list[dict[str, Any]] = []
    sustained = 0.0
    clients = max(1, room)
    for rate in args.rates:
        count = max(1, math.ceil(rate * args.rate_seconds))
        began = time.perf_counter()
        cpu_before = bench.cpu()
        tasks = []
        for n in range(count):
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
            tasks.append(
                asyncio.create_task(
                    setup_once(bench, next_number(), n % clients, args.hold_seconds)
                )
            )
        results = await asyncio.gather(*tasks)
        seconds = time.perf_counter() - began
        cpu_after = bench.cpu()
        got = summary(list(results))
        share = got["established"] / count
        got.update(
            rate=rate,
            established_share=round(share, 3),
            sip_cpu_ms_per_setup=round(
                (cpu_after["sip"] - cpu_before["sip"]) * 1000 / max(1, got["established"]), 1
            ),
            cpu_cores={
                k: round((cpu_after[k] - cpu_before.get(k, 0.0)) / seconds, 2) for k in cpu_after
            },
        )
        rates.append(got)
        print(
            f"set-up at {rate:g}/s for {args.rate_seconds:g} s (held {args.hold_seconds:g} s): "
            f"{got['established']}/{count} p50 {got['p50_ms']} p99 {got['p99_ms']} ms, "
            f"sip CPU {got['sip_cpu_ms_per_setup']} ms a call {got['errors'] or ''}",
            flush=True,
        )
        if share < 0.99:
            break
        sustained = rate
    return {
        "sequential": seq,
        "bursts": bur,
        "burst_size": size,
        "rates": rates,
        "sustained": sustained,
    }


# -- the run -----------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="parley-bench-sip-"))
    os.chmod(home, 0o755)
    trunk_port = free_udp_port()
    services = [
        service("auth", "parley_auth", database=True, master_key=True),
        service("gateway", "parley_gateway", public_port=0, public_port_env="PARLEY_GATEWAY_PORT"),
        service("calls", "parley_calls"),
    ]
    settings = StackSettings(
        home=home, master_key=base64.b64encode(os.urandom(32)).decode(), nats_port=0
    )
    log = open(home / "stack.log", "w")  # noqa: ASYNC230 (once, before anything runs)
    stack = DevStack(settings, services=services, out=log)
    trunk = Sipp(
        "uas_answer",
        home / "sipp",
        port=trunk_port,
        calls=1_000_000,
        limit=10_000,
        rtp_echo=True,
        trace_messages=False,
        timeout_s=3600,
    )
    bench = Bench(stack, home, trunk, args)
    began = time.monotonic()
    lag = asyncio.get_running_loop().create_task(bench.watch_lag())
    exited: list[str] = []
    try:
        await stack.start()
        await trunk.start()
        await stack._admin("rates-set", RATE_PREFIX, RATE_PER_MINUTE)
        await stack._admin("credits-topup", stack.sandbox_app["application_key"], CREDIT)
        await bench.add_sip()
        print(
            f"stack up in {time.monotonic() - began:.1f} s; sipp trunk on 127.0.0.1:{trunk_port}",
            flush=True,
        )
        warm = await setup_once(bench, 0, 0, 0.0)  # imports, first connection
        if not isinstance(warm, float):
            raise RuntimeError(f"the first call failed: {warm}")
        conc = await concurrency(bench)
        exited += bench.dead()
        await asyncio.sleep(1.0)  # the ramp's calls are over everywhere
        room = (conc["per_process"] or 4) * len(bench.sip_names)
        setups = await setup(bench, room)
        exited += [d for d in bench.dead() if d not in exited]
        sipp_running = trunk.running
    finally:
        lag.cancel()
        await asyncio.gather(*(c.terminate() for c in bench.clients), return_exceptions=True)
        await trunk.stop()
        await stack.stop()
        log.close()
        if args.keep:
            print(f"kept {home} (stack.log, sipp/)")
        else:
            shutil.rmtree(home, ignore_errors=True)
    for line in exited:
        print(f"EXITED: {line}")
    best = conc["best"] or {}
    all_setups = setups["sequential"]["samples"] + setups["bursts"]["samples"]
    return {
        "benchmark": "sip",
        "seconds": round(time.monotonic() - began, 1),
        "setup_ms_p50": round(percentile(all_setups, 50) * 1000, 1),
        "setup_ms_p90": round(percentile(all_setups, 90) * 1000, 1),
        "setup_ms_p99": round(percentile(all_setups, 99) * 1000, 1),
        "setup_sequential": {k: v for k, v in setups["sequential"].items() if k != "samples"},
        "setup_bursts": {k: v for k, v in setups["bursts"].items() if k != "samples"},
        "burst_size": setups["burst_size"],
        "setups_per_second": setups["sustained"],
        "setup_rates": [{k: v for k, v in r.items() if k != "samples"} for r in setups["rates"]],
        "pjsua_max_calls_per_process": conc["per_process"],
        "extra_call_refused_with": conc["refusal"],
        "max_concurrent_no_gaps_one_process": conc["best_one"],
        "max_concurrent_no_gaps": best.get("calls", 0),
        "sip_processes": best.get("sip_processes", 0),
        "sip_processes_started": len(bench.sip_names),
        "cpu_ms_per_call_second": best.get("sip_cpu_ms_per_call_second"),
        "client_cpu_ms_per_call_second": best.get("client_cpu_ms_per_call_second"),
        "cpu_cores_at_max": best.get("cpu_cores"),
        "concurrency_levels": conc["levels"],
        "sipp_still_running": sipp_running,
        "services_exited": [line.split(" ", 1)[0] for line in exited],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-processes", type=int, default=8, help="sip processes at most")
    parser.add_argument(
        "--max-level-one", type=int, default=16, help="calls tried on one sip process at most"
    )
    parser.add_argument("--settle", type=float, default=1.0, help="s after calls are added")
    parser.add_argument("--window", type=float, default=3.0, help="s of audio read a level")
    parser.add_argument("--sequential", type=int, default=20, help="calls one after another")
    parser.add_argument("--burst", type=int, default=4, help="calls at once (within room)")
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[1, 2, 3, 4, 6, 8, 12, 16], help="calls/s"
    )
    parser.add_argument("--rate-seconds", type=float, default=5.0, help="s at each rate")
    parser.add_argument("--hold-seconds", type=float, default=1.0, help="each call's length")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and its logs")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    best = figures["max_concurrent_no_gaps"]
    print(
        f"one sip process holds {figures['pjsua_max_calls_per_process']} calls (the next: "
        f"{figures['extra_call_refused_with'] or 'not refused'}); no gaps up to "
        f"{figures['max_concurrent_no_gaps_one_process']} on one process, {best} on "
        f"{figures['sip_processes']} processes"
    )
    print(
        f"at {best} calls: sip {figures['cpu_ms_per_call_second']} ms and clients "
        f"{figures['client_cpu_ms_per_call_second']} ms CPU per call-second; cores "
        f"{figures['cpu_cores_at_max']}"
    )
    print(
        f"set-up p50 {figures['setup_ms_p50']} p90 {figures['setup_ms_p90']} p99 "
        f"{figures['setup_ms_p99']} ms; sustained {figures['setups_per_second']:g} set-ups/s "
        f"(>= 99 % established, each held {args.hold_seconds:g} s)"
    )
    print(f"wall time {figures['seconds']} s")
    print(json.dumps(figures))
    sys.exit(1 if figures["services_exited"] else 0)  # a crash is a failure, a refusal is not


if __name__ == "__main__":
    main()
