"""Idle signed-in connections on one gateway process: connect rate and memory per connection.

Starts NATS, PostgreSQL, auth and ONE gateway process (the same DevStack as `make run`, on
free ports, data in a temp dir), then N simulated reference clients (signaling only,
`.media(False)`), spread over worker processes, register (self-signed) and hold idle
connections (heartbeats on). Prints registrations/s, connections/s, start latency
percentiles, the gateway's CPU per connect (its CPU time while the clients connect, divided
by the connections), its CPU share while they idle, and its resident memory per idle
connection, then one JSON line.

    .venv/bin/python bench/connect.py [--clients N] [--workers W] [--hold SECONDS]

The idle share is taken over `--hold` seconds, by default two rounds of presence refresh
(every entry is rewritten once per round: a third of the entries' TTL, 40 s at the
defaults), so it holds refreshes and heartbeats in their steady proportion.

With `--storm` a second gateway runs beside the first (every client knows both, connects
to the first); after the hold the first is killed (SIGKILL) and the script waits until
the second holds every session again: how long that took, how many sessions resumed, how
many clients gave up, and the second gateway's CPU per reconnect.

Every connection goes to 127.0.0.1. One process here may hold at most `ulimit -Hn` file
descriptors (20,000 on this machine), so the default N leaves the gateway room for its own.
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
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import cpu_seconds, percentile, rss_kib
from simulated import signaling_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.e2e

import aiohttp

from parley_client import ParleyClient
from parley_devstack.services import ServiceDef
from parley_devstack.stack import DevStack, StackSettings
from parley_gateway.settings import GatewaySettings
from parley_protocol import heap
from tests.e2e.stack import gateway_def

GATEWAY_FD_RESERVE = 100  # listening sockets, NATS, health port, epoll, logs ...
STORM_TIMEOUT_SECONDS = 120.0
SETTLE_SECONDS = 10.0


def default_hold() -> float:
    """Two rounds of presence refresh at the gateway's default settings."""
    return 2 * GatewaySettings().presence_entry_ttl_seconds / 3


def default_clients() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(100, min(20_000, hard - GATEWAY_FD_RESERVE))


# -- worker processes: simulated clients ------------------------------------------------------


def worker(index: int, count: int, config: dict[str, Any], conn: Any) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_worker(index, count, config, conn))


async def _worker(index: int, count: int, config: dict[str, Any], conn: Any) -> None:
    sem = asyncio.Semaphore(config["concurrency"])
    clients: list[ParleyClient] = []
    latencies: list[float] = []
    failures: list[str] = []

    async def one(n: int) -> None:
        client = signaling_client(config, f"bench-{index}-{n}", config["hosts"])
        client.set_support_messaging(True)
        async with sem:
            started = time.perf_counter()
            try:
                await client.start()
                client.start_listening_on_active_connection()
                latencies.append(time.perf_counter() - started)
                clients.append(client)
            except Exception as exc:  # counted and reported, never hidden
                failures.append(f"{type(exc).__name__}: {exc}")

    heap.settle()  # the modules loaded, out of the collector's sight from the start
    began = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    heap.settle()  # the clients stay connected until the end
    conn.send(
        {
            "connected": len(clients),
            "latencies": latencies,
            "failures": failures[:5],
            "failed": len(failures),
            "seconds": time.perf_counter() - began,
        }
    )
    # Hold until told to stop (the parent measures the gateway meanwhile).
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    # After a storm a client whose session is back may still be applying its Listen (not
    # "started" yet): give them a moment; one that gave up never is.
    settle_until = time.perf_counter() + SETTLE_SECONDS
    while time.perf_counter() < settle_until and not all(c.is_started for c in clients):  # noqa: ASYNC110 (no event says a client is started again)
        await asyncio.sleep(0.2)
    still = sum(1 for c in clients if c.is_started)
    await asyncio.gather(*(c.terminate() for c in clients), return_exceptions=True)
    conn.send({"still_connected": still})


# -- the benchmark -----------------------------------------------------------------------------


async def gateway_metrics(stack: DevStack, name: str) -> dict[str, float]:
    """Signed-in sessions, Welcomes sent, and resumes by outcome ("resume:<outcome>"), from
    a gateway's /metrics."""
    url = f"http://127.0.0.1:{stack.ports[name].health}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    found = {"sessions": 0.0, "welcomes": 0.0}
    for line in text.splitlines():
        if line.startswith("parley_gateway_sessions{"):
            found["sessions"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith('parley_gateway_frames_total{direction="out",type="welcome"}'):
            found["welcomes"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith('parley_gateway_resumes_total{outcome="'):
            outcome = line.split('"')[1]
            found[f"resume:{outcome}"] = float(line.rsplit(" ", 1)[1])
    return found


async def storm(stack: DevStack, timeout: float) -> dict[str, Any]:
    """Kill gateway-a; wait until gateway-b has welcomed as many sessions as gateway-a held
    (the clients of gateway-a reconnect there). Polls gateway-b's /metrics four times a
    second (its CPU includes answering them)."""
    survivor = stack.supervisor.status("gateway-b").pid
    assert survivor is not None
    moving = int((await gateway_metrics(stack, "gateway-a"))["sessions"])
    before = await gateway_metrics(stack, "gateway-b")
    cpu_before = cpu_seconds(survivor)
    began = time.perf_counter()
    stack.supervisor.kill("gateway-a")
    reached: dict[int, float] = {}
    back = 0
    while time.perf_counter() - began < timeout:
        back = int((await gateway_metrics(stack, "gateway-b"))["welcomes"] - before["welcomes"])
        for share in (50, 90, 99, 100):
            if share not in reached and back >= moving * share / 100:
                reached[share] = time.perf_counter() - began
        if back >= moving:
            break
        await asyncio.sleep(0.25)
    cpu = cpu_seconds(survivor) - cpu_before
    metrics = await gateway_metrics(stack, "gateway-b")
    return {
        "sessions_on_killed_gateway": moving,
        "sessions_back": back,
        "seconds_to_share_back": {f"{k}%": round(v, 2) for k, v in reached.items()},
        "resumes": {
            k.removeprefix("resume:"): int(v - before.get(k, 0))
            for k, v in metrics.items()
            if k.startswith("resume:") and v > before.get(k, 0)
        },
        "survivor_cpu_seconds": round(cpu, 2),
        "survivor_cpu_ms_per_reconnect": round(cpu * 1000 / max(back, 1), 3),
    }


async def run(
    clients: int, workers: int, hold: float, concurrency: int, with_storm: bool
) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    os.chmod(home, 0o755)
    names = ["gateway-a", "gateway-b"] if with_storm else ["gateway"]
    services = [
        ServiceDef(
            name="auth", module="parley_auth", health_port=0, database=True, master_key=True
        ),
        *(gateway_def(name, {"PARLEY_LOG_LEVEL": "WARNING"}) for name in names),
    ]
    settings = StackSettings(home=home, master_key=base64.b64encode(os.urandom(32)).decode())
    log = open(home / "stack.log", "w")  # noqa: ASYNC230 (once, before anything runs)
    stack = DevStack(settings, services=services, out=log)
    try:
        await stack.start()
        gateway_pid = stack.supervisor.status(names[0]).pid
        assert gateway_pid is not None
        hosts = [f"127.0.0.1:{stack.ports[name].public}" for name in names]
        host = hosts[0]
        config = {
            "app_key": stack.sandbox_app["application_key"],
            "app_secret": stack.sandbox_app["application_secret"],
            "hosts": hosts,
            "state": str(home / "clients"),
            "concurrency": max(1, concurrency // workers),
        }
        await asyncio.sleep(1.0)
        baseline = rss_kib(gateway_pid)
        cpu_before = cpu_seconds(gateway_pid)
        print(f"gateway pid {gateway_pid} at {host}; RSS before clients {baseline} KiB", flush=True)

        ctx = mp.get_context("spawn")
        pipes, procs = [], []
        share = [clients // workers + (1 if i < clients % workers else 0) for i in range(workers)]
        began = time.perf_counter()
        for i, n in enumerate(share):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker, args=(i, n, config, child), daemon=True)
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        loop = asyncio.get_running_loop()
        reports = await asyncio.gather(*(loop.run_in_executor(None, p.recv) for p in pipes))
        connect_seconds = time.perf_counter() - began
        gateway_cpu = cpu_seconds(gateway_pid) - cpu_before
        connected = sum(r["connected"] for r in reports)
        failed = sum(r["failed"] for r in reports)
        failures = sorted({f for r in reports for f in r["failures"]})[:5]
        latencies = [x for r in reports for x in r["latencies"]]
        print(
            f"{connected} clients registered and connected in {connect_seconds:.1f} s "
            f"({failed} failed{': ' + str(failures) if failed else ''})",
            flush=True,
        )

        idle_from = cpu_seconds(gateway_pid)
        await asyncio.sleep(hold)  # idle: only heartbeats and presence refreshes
        idle_cpu = cpu_seconds(gateway_pid) - idle_from
        loaded = rss_kib(gateway_pid)
        per_conn = (loaded - baseline) / connected if connected else float("nan")
        stormed = await storm(stack, STORM_TIMEOUT_SECONDS) if with_storm else None
        for p in pipes:
            p.send("stop")
        finals = await asyncio.gather(*(loop.run_in_executor(None, p.recv) for p in pipes))
        for proc in procs:
            proc.join(timeout=30)
        still = sum(f["still_connected"] for f in finals)
        figures = {
            "benchmark": "connect",
            "clients": clients,
            "connected": connected,
            "failed": failed,
            "failures": failures,
            "still_connected_after_hold": still,
            "hold_seconds": hold,
            "connect_seconds": round(connect_seconds, 2),
            "connections_per_second": round(connected / connect_seconds, 1),
            "start_latency_ms": {
                "p50": round(percentile(latencies, 50) * 1000, 1),
                "p90": round(percentile(latencies, 90) * 1000, 1),
                "p99": round(percentile(latencies, 99) * 1000, 1),
                "mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
            },
            "gateway_cpu_ms_per_connect": round(gateway_cpu * 1000 / max(connected, 1), 3),
            "gateway_idle_cpu_percent": round(100 * idle_cpu / hold, 1),
            "gateway_rss_kib": {"before": baseline, "with_clients": loaded},
            "gateway_kib_per_idle_connection": round(per_conn, 2),
        }
        if stormed is not None:
            figures["storm"] = {**stormed, "gave_up": connected - still}
        return figures
    finally:
        await stack.stop()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=default_clients())
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--hold",
        type=float,
        default=default_hold(),
        help="seconds to hold idle (default: two rounds of presence refresh)",
    )
    parser.add_argument("--concurrency", type=int, default=400, help="starts in flight")
    parser.add_argument(
        "--storm", action="store_true", help="then kill the gateway under the idle clients"
    )
    args = parser.parse_args()
    figures = asyncio.run(run(args.clients, args.workers, args.hold, args.concurrency, args.storm))
    print(f"registrations+connections per second: {figures['connections_per_second']}")
    print(f"start latency p50/p90/p99 ms: {figures['start_latency_ms']}")
    print(
        "gateway CPU per connect (HTTP register + WebSocket sign-in + listen, with the "
        f"upkeep of those already connected): {figures['gateway_cpu_ms_per_connect']} ms"
    )
    print(
        f"gateway CPU while {figures['connected']} connections idle (heartbeats, presence "
        f"refresh): {figures['gateway_idle_cpu_percent']} % of a core"
    )
    print(f"gateway RSS per idle connection: {figures['gateway_kib_per_idle_connection']} KiB")
    if "storm" in figures:
        st = figures["storm"]
        print(
            f"storm: {st['sessions_back']} of the {st['sessions_on_killed_gateway']} sessions of the "
            "killed gateway welcomed by the other "
            f"gateway (seconds to each share: {st['seconds_to_share_back']}), resumes {st['resumes']}, "
            f"{st['gave_up']} clients gave up; its CPU "
            f"{st['survivor_cpu_ms_per_reconnect']} ms per reconnect"
        )
    print(json.dumps(figures))
    sys.exit(0 if figures["failed"] == 0 else 1)


if __name__ == "__main__":
    main()
