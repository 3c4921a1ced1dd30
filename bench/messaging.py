"""Instant messages through the whole stack, persisted: latency paced, at 2,000 a second, and
the highest sustained rate.

Starts NATS, PostgreSQL, auth, one gateway and the messaging service (the DevStack of
`make run`, free ports, temp dir), then N reference clients in signaling-only mode over
worker processes. Every message carries its send time; its latency is send() -> the
recipient's on_incoming_message, and it counts as delivered when the recipient got it.
Three phases, in this order: paced (20 messages a second); saturated (every client sends as
fast as its delivered receipts come back, with at most `--outstanding` messages not delivered
yet: a closed loop, so the rate it reaches is what the stack sustains); offered (2,000 a
second, open loop: beyond what the stack sustains, a backlog grows). Saturated runs before
offered so that no backlog is left in it. Prints p50/p90/p99 and the rate delivered while
each phase ran, then one JSON line.

    .venv/bin/python bench/messaging.py [--clients N] [--workers W] [--seconds S]
        [--phases paced,saturated,offered]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import cpu_seconds, percentile, tree_cpu_seconds
from simulated import settings

from parley_devstack.services import ServiceDef
from parley_devstack.stack import DevStack, StackSettings
from parley_loadtest.clients import simulated_client

QUIET = {"PARLEY_LOG_LEVEL": "WARNING"}
# How long a phase's backlog may take to drain before the next phase starts.
DRAIN_SECONDS = 60.0
PHASES = ("paced", "saturated", "offered")


def worker(
    index: int, users: list[str], everyone: list[str], config: dict[str, Any], conn: Any
) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_worker(index, users, everyone, config, conn))


async def _worker(
    index: int, users: list[str], everyone: list[str], config: dict[str, Any], conn: Any
) -> None:
    from parley_client import MessageClientListener, ParleyClient, WritableMessage

    # (phase, latency in seconds, arrival on this clock): send() -> on_incoming_message
    received: list[tuple[str, float, float]] = []
    receipts: list[float] = []  # when each delivered receipt came back to its sender
    settled = [0]  # messages of this worker's senders delivered or failed
    errors: list[str] = []

    class Listener(MessageClientListener):
        def __init__(self) -> None:
            # The saturated phase's messages of this sender not delivered yet, and a slot
            # for each one it may still send.
            self.pending: set[str] = set()
            self.slots = asyncio.Semaphore(config["outstanding"])

        def settle(self, message_id: str) -> None:
            settled[0] += 1
            if message_id in self.pending:
                self.pending.discard(message_id)
                self.slots.release()

        def on_incoming_message(self, client: Any, message: Any) -> None:
            phase, sent_at = message.text_body.split(":", 1)
            now = time.time()
            received.append((phase, now - float(sent_at), now))

        def on_message_delivered(self, client: Any, info: Any) -> None:
            receipts.append(time.time())
            self.settle(info.message_id)

        def on_message_failed(self, client: Any, message: Any, info: Any) -> None:
            errors.append(f"failed: {info.error}")
            self.settle(message.message_id)

    listeners: dict[str, Listener] = {}

    def build(user: str) -> ParleyClient:
        client = simulated_client(settings(config, [config["host"]]), user, messaging=True)
        listeners[user] = Listener()
        client.message_client.add_message_client_listener(listeners[user])
        return client

    clients = [build(u) for u in users]
    sem = asyncio.Semaphore(40)

    async def start(client: ParleyClient) -> None:
        async with sem:
            await client.start()
            await client.start_listening_on_active_connection()

    await asyncio.gather(*(start(c) for c in clients))
    conn.send({"started": len(clients)})
    rng = random.Random(index)

    def send(client: ParleyClient, phase: str, recipient: str | None = None) -> str:
        to = recipient or rng.choice(everyone)
        text = f"{phase}:{time.time()}"
        return client.message_client.send(WritableMessage([to], text)).message_id

    async def paced(phase: str, rate: float, seconds: float, start: float) -> int:
        """This worker's share of `rate`, from random senders. The workers interleave on one
        schedule from the wall-clock `start` (worker i sends the i-th message of every
        round of `workers`): were each worker to pace alone, their sends would come in
        bursts of `workers` at once."""
        interval = config["workers"] / rate
        began = start + index / rate
        sent = 0
        await asyncio.sleep(max(0.0, began - time.time()))
        while time.time() - start < seconds:
            send(rng.choice(clients), phase)
            sent += 1
            await asyncio.sleep(max(0.0, began + sent * interval - time.time()))
        return sent

    async def flood(client: ParleyClient, phase: str, until: float) -> int:
        """As fast as this sender's delivered receipts allow (a closed loop)."""
        listener = listeners[client.user_id or ""]
        sent = 0
        while time.perf_counter() < until:
            try:
                await asyncio.wait_for(listener.slots.acquire(), until - time.perf_counter())
            except TimeoutError:
                break
            listener.pending.add(send(client, phase))
            sent += 1
        return sent

    total_sent = 0
    while (order := conn.recv()) != "stop":
        phase, rate, seconds = order["phase"], order["rate"], order["seconds"]
        await asyncio.sleep(max(0.0, order.get("start", 0.0) - time.time()))  # all at once
        started_at = time.time()
        cpu_at = time.process_time()
        if phase == "warmup":  # each client to the next: every recipient is known after
            for client in clients:
                user = client.user_id or ""
                send(client, phase, everyone[(everyone.index(user) + 1) % len(everyone)])
            sent = len(clients)
        elif rate:
            sent = await paced(phase, rate, seconds, order["start"])
        else:
            until = time.perf_counter() + seconds
            sent = sum(await asyncio.gather(*(flood(c, phase, until) for c in clients)))
        ended_at = time.time()
        total_sent += sent
        # The backlog drains before the next phase (at most DRAIN_SECONDS).
        while settled[0] < total_sent and time.time() - ended_at < DRAIN_SECONDS:  # noqa: ASYNC110 (a bench: polling is plainer)
            await asyncio.sleep(0.1)
        await asyncio.sleep(order["drain"])  # late arrivals and duplicates show
        cpu_used = time.process_time() - cpu_at  # the drain's too
        conn.send({"sent": sent, "window": (started_at, ended_at), "cpu_seconds": cpu_used})
    conn.send(
        {
            "received": received,
            "receipts": receipts,
            "errors": errors[:5],
            "error_count": len(errors),
        }
    )
    await asyncio.gather(*(c.terminate() for c in clients), return_exceptions=True)


async def run(
    clients: int, workers: int, seconds: float, outstanding: int, chosen: list[str]
) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    os.chmod(home, 0o755)

    def service(name: str, module: str, **extra: Any) -> ServiceDef:
        return ServiceDef(name=name, module=module, health_port=0, env=dict(QUIET), **extra)

    services = [
        service("auth", "parley_auth", database=True, master_key=True),
        service("gateway", "parley_gateway", public_port=0, public_port_env="PARLEY_GATEWAY_PORT"),
        service("messaging", "parley_messaging", database=True),
    ]
    settings = StackSettings(
        home=home, master_key=base64.b64encode(os.urandom(32)).decode(), nats_port=0
    )
    log = open(home / "stack.log", "w")  # noqa: ASYNC230 (once, before anything runs)
    stack = DevStack(settings, services=services, out=log)
    warmup = {"phase": "warmup", "rate": 0.0, "seconds": 0.0, "drain": 1.0}
    phases = [
        phase
        for phase in (
            {"phase": "paced", "rate": 20.0, "seconds": seconds, "drain": 1.0},
            {"phase": "saturated", "rate": 0.0, "seconds": seconds, "drain": 1.0},
            {"phase": "offered", "rate": 2000.0, "seconds": seconds, "drain": 1.0},
        )
        if phase["phase"] in chosen
    ]
    try:
        await stack.start()
        assert stack.nats is not None and stack.nats.pid is not None
        pids = {n: stack.supervisor.status(n).pid for n in ("gateway", "messaging", "auth")}
        pids["nats"] = stack.nats.pid
        if stack.postgres is not None and stack.postgres.pid is not None:
            pids["postgres"] = stack.postgres.pid
        users = [f"user-{i}" for i in range(clients)]
        config = {
            "app_key": stack.sandbox_app["application_key"],
            "app_secret": stack.sandbox_app["application_secret"],
            "host": f"127.0.0.1:{stack.ports['gateway'].public}",
            "state": str(home / "clients"),
            "workers": workers,
            "outstanding": outstanding,
        }
        ctx = mp.get_context("spawn")
        pipes, procs = [], []
        for i in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker, args=(i, users[i::workers], users, config, child), daemon=True
            )
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        loop = asyncio.get_running_loop()

        async def ask_all(message: Any) -> list[dict[str, Any]]:
            if message is not None:
                for p in pipes:
                    p.send(message)
            return list(await asyncio.gather(*(loop.run_in_executor(None, p.recv) for p in pipes)))

        started = sum(r["started"] for r in await ask_all(None))
        print(f"{started} clients connected", flush=True)
        results: dict[str, Any] = {}
        await ask_all(warmup)  # the service has looked every user up once
        for phase in phases:
            cpu_before = {n: measure_cpu(n, pid) for n, pid in pids.items() if pid}
            answers = await ask_all({**phase, "start": time.time() + 0.2})
            sent = sum(r["sent"] for r in answers)
            cpu = {n: measure_cpu(n, pid) - cpu_before[n] for n, pid in pids.items() if pid}
            cpu["clients"] = sum(r["cpu_seconds"] for r in answers)
            window = (min(r["window"][0] for r in answers), max(r["window"][1] for r in answers))
            results[phase["phase"]] = {"sent": sent, "cpu_seconds": cpu, "window": window}
            print(f"{phase['phase']}: {sent} sent", flush=True)
        finals = await ask_all("stop")
        for proc in procs:
            proc.join(timeout=30)
    finally:
        await stack.stop()
        log.close()
        shutil.rmtree(home, ignore_errors=True)

    received = [x for f in finals for x in f["received"]]
    receipts = [t for f in finals for t in f["receipts"]]
    errors = sum(f["error_count"] for f in finals)
    figures: dict[str, Any] = {
        "benchmark": "messaging",
        "clients": started,
        "errors": errors,
        "persistence": "PostgreSQL, synchronous commit on",
    }
    for phase in phases:
        name = phase["phase"]
        latencies = [lat for p, lat, _ in received if p == name]
        sent = results[name]["sent"]
        cpu = results[name]["cpu_seconds"]
        begin, end = results[name]["window"]
        # Delivered while the phase ran (its backlog, drained afterwards, does not count).
        arrived = sum(1 for p, _, at in received if p == name and begin <= at <= end)
        figures[name] = {
            "offered_per_second": phase["rate"] or None,
            "sent": sent,
            "delivered": len(latencies),
            "delivered_per_second": round(arrived / (end - begin), 1),
            "receipts_per_second": round(
                sum(1 for t in receipts if begin <= t <= end) / (end - begin), 1
            ),
            "latency_ms": {
                "p50": round(percentile(latencies, 50) * 1000, 2),
                "p90": round(percentile(latencies, 90) * 1000, 2),
                "p99": round(percentile(latencies, 99) * 1000, 2),
            },
            "cpu_ms_per_message": {
                n: round(s * 1000 / max(len(latencies), 1), 3) for n, s in cpu.items()
            },
        }
    return figures


def measure_cpu(name: str, pid: int) -> float:
    return tree_cpu_seconds(pid) if name == "postgres" else cpu_seconds(pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument(
        "--outstanding", type=int, default=2, help="undelivered messages per sender, saturated"
    )
    parser.add_argument(
        "--phases", default=",".join(PHASES), help="which phases to run, comma-separated"
    )
    args = parser.parse_args()
    chosen = args.phases.split(",")
    if unknown := set(chosen) - set(PHASES):
        parser.error(f"unknown phases {sorted(unknown)}; the phases are {', '.join(PHASES)}")
    figures = asyncio.run(run(args.clients, args.workers, args.seconds, args.outstanding, chosen))
    for phase in PHASES:
        if phase not in figures:
            continue
        f = figures[phase]
        print(
            f"{phase}: delivered {f['delivered']}/{f['sent']} ({f['delivered_per_second']}/s), "
            f"send -> incoming p50 {f['latency_ms']['p50']} ms, p99 {f['latency_ms']['p99']} ms"
        )
    print(json.dumps(figures))
    sys.exit(0 if figures["errors"] == 0 else 1)


if __name__ == "__main__":
    main()
