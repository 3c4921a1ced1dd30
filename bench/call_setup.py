"""Call set-up latency: 1,000 signaling-only clients, 50 new calls a second.

Starts NATS, PostgreSQL, auth, one gateway and the calls service (the DevStack of `make
run`, free ports, temp dir), then N reference clients in signaling-only mode
(`.media(False)`) over worker processes: half of them call, half answer at once. Each
worker keeps a caller and its callee in the same process, so both latencies are read off
one clock: call_user -> on_call_progressing (the callee's device rings), and the callee's
answer -> the caller's on_call_established. Calls are placed at a steady total rate, each
is hung up once established. Prints p50/p90/p99 of both, errors, and the CPU a call set-up
costs each process (gateway, calls, auth, NATS), then one JSON line.

    .venv/bin/python bench/call_setup.py [--clients N] [--rate R] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import cpu_seconds, percentile
from simulated import settings

from parley_devstack.services import ServiceDef
from parley_devstack.stack import DevStack, StackSettings
from parley_loadtest.clients import simulated_client

QUIET = {"PARLEY_LOG_LEVEL": "WARNING"}


def worker(index: int, pairs: int, config: dict[str, Any], conn: Any) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_worker(index, pairs, config, conn))


async def _worker(index: int, pairs: int, config: dict[str, Any], conn: Any) -> None:
    from parley_client import Call, CallClient, CallClientListener, CallEndCause, ParleyClient

    answered_at: dict[str, float] = {}

    class Callee(CallClientListener):
        def on_incoming_call(self, call_client: CallClient, call: Call) -> None:
            answered_at[call.call_id] = time.perf_counter()
            call.answer()

    def build(user: str) -> ParleyClient:
        client = simulated_client(settings(config, [config["host"]]), user, calling=True)
        return client

    callers = [build(f"caller-{index}-{n}") for n in range(pairs)]
    callees = [build(f"callee-{index}-{n}") for n in range(pairs)]
    sem = asyncio.Semaphore(40)

    async def start(client: ParleyClient, listen: bool) -> None:
        async with sem:
            await client.start()
            if listen:
                client.call_client.add_call_client_listener(Callee())
                await client.start_listening_on_active_connection()

    await asyncio.gather(*(start(c, False) for c in callers), *(start(c, True) for c in callees))
    conn.send({"started": len(callers) + len(callees)})
    began_at = conn.recv()  # the parent's go, with the shared start time
    progressing: list[float] = []
    established: list[float] = []
    errors: list[str] = []

    async def one_call(n: int) -> None:
        caller, callee = callers[n % pairs], f"callee-{index}-{n % pairs}"
        started = time.perf_counter()
        call = caller.call_client.call_user(callee)
        progressed = asyncio.get_running_loop().create_future()

        class Progress:
            def on_call_progressing(self, call: Call) -> None:
                if not progressed.done():
                    progressed.set_result(time.perf_counter())

        call.add_call_listener(Progress())  # type: ignore[arg-type]
        try:
            await call.wait_established(10)
            done = time.perf_counter()
            progressing.append(await asyncio.wait_for(progressed, 1) - started)
            established.append(done - answered_at.pop(call.call_id, started))
            await call.hangup()
            details = await call.wait_ended(5)
            if details.end_cause is not CallEndCause.HUNG_UP:
                errors.append(f"ended {details.end_cause}")
        except Exception as exc:  # counted and reported, never hidden
            errors.append(f"{type(exc).__name__}: {exc}")

    interval = config["workers"] / config["rate"]
    tasks = []
    for n in range(config["calls_per_worker"]):
        at = began_at + n * interval + index * interval / config["workers"]
        await asyncio.sleep(max(0.0, at - time.time()))
        tasks.append(asyncio.create_task(one_call(n)))
    await asyncio.gather(*tasks)
    conn.send({"progressing": progressing, "established": established, "errors": errors})
    await asyncio.gather(*(c.terminate() for c in callers + callees), return_exceptions=True)


def service(name: str, module: str, **extra: Any) -> ServiceDef:
    return ServiceDef(name=name, module=module, health_port=0, env=dict(QUIET), **extra)


async def run(clients: int, workers: int, rate: float, seconds: float) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    os.chmod(home, 0o755)
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
    try:
        await stack.start()
        assert stack.nats is not None and stack.nats.pid is not None
        pids = {name: stack.supervisor.status(name).pid for name in ("gateway", "calls", "auth")}
        pids["nats"] = stack.nats.pid
        pairs = clients // 2 // workers
        total_calls = int(rate * seconds)
        config = {
            "app_key": stack.sandbox_app["application_key"],
            "app_secret": stack.sandbox_app["application_secret"],
            "host": f"127.0.0.1:{stack.ports['gateway'].public}",
            "state": str(home / "clients"),
            "workers": workers,
            "rate": rate,
            "calls_per_worker": total_calls // workers,
        }
        ctx = mp.get_context("spawn")
        pipes, procs = [], []
        for i in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker, args=(i, pairs, config, child), daemon=True)
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        loop = asyncio.get_running_loop()
        started = sum(
            r["started"]
            for r in await asyncio.gather(*(loop.run_in_executor(None, p.recv) for p in pipes))
        )
        print(f"{started} clients connected; placing {total_calls} calls at {rate:g}/s", flush=True)
        await asyncio.sleep(1.0)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
        go = time.time() + 0.5
        for p in pipes:
            p.send(go)
        reports = await asyncio.gather(*(loop.run_in_executor(None, p.recv) for p in pipes))
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items() if pid}
        for proc in procs:
            proc.join(timeout=30)
    finally:
        await stack.stop()
        log.close()
        shutil.rmtree(home, ignore_errors=True)

    progressing = [x for r in reports for x in r["progressing"]]
    established = [x for r in reports for x in r["established"]]
    errors = [x for r in reports for x in r["errors"]]
    calls = len(established) or 1

    def ms(values: list[float]) -> dict[str, float]:
        return {p: round(percentile(values, float(p[1:])) * 1000, 2) for p in ("p50", "p90", "p99")}

    return {
        "benchmark": "call_setup",
        "clients": started,
        "calls_per_second": rate,
        "calls": len(established),
        "errors": len(errors),
        "error_samples": errors[:5],
        "call_to_progressing_ms": ms(progressing),
        "answer_to_established_ms": ms(established),
        "cpu_ms_per_call": {name: round(spent * 1000 / calls, 3) for name, spent in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=50.0, help="new calls a second")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    figures = asyncio.run(run(args.clients, args.workers, args.rate, args.seconds))
    print(f"call_user -> on_call_progressing ms: {figures['call_to_progressing_ms']}")
    print(f"answer -> on_call_established ms:    {figures['answer_to_established_ms']}")
    print(f"calls {figures['calls']}, errors {figures['errors']} {figures['error_samples']}")
    print(f"CPU per call, set-up to hang-up (ms): {figures['cpu_ms_per_call']}")
    print(json.dumps(figures))
    sys.exit(0 if figures["errors"] == 0 else 1)


if __name__ == "__main__":
    main()
