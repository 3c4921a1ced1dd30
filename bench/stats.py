"""Call-report ingestion through the stats service: upload latency, how soon a report is
stored, the rates it takes and stores reports at, its CPU per report, and an aggregate
query's latency.

Starts NATS and PostgreSQL (embedded, free ports, temp dir) and the stats service as a
process (its default batching: up to 500 reports or 0.2 s a transaction). Every upload is
what a gateway forwards for a device: a ClientRequest with its Caller on the stats service's
client subject, each of a distinct call and device. A report counts as stored once its row
is visible in stats.call_reports (the table is polled every 50 ms, so stored latencies are
late by up to that much). After 50 uploads to warm up, the phases (defaults: 200 a second
for 15 s, a burst of 20,000, 5 queries):

- paced:     `--rate` uploads a second for `--seconds`: p50/p99 of upload -> accepted and
             of upload -> stored;
- burst:     `--burst` uploads as fast as they are answered (at most 200 in flight): the
             rate they are accepted at, and the rate they are stored at, both from the first
             upload (to the last accepted, to the last row stored); p50/p99 as above; the
             service's CPU per 1,000 reports (NATS's, PostgreSQL's and this process's too)
             and its resident memory afterwards;
- aggregate: `--queries` CallAggregateQuery over the window of every report stored: p50 and
             the slowest.

Prints the figures, then one JSON line.

    .venv/bin/python bench/stats.py [--rate R] [--seconds S] [--burst N] [--queries Q]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from measure import cpu_seconds, percentile, rss_kib, tree_cpu_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

import asyncpg
import nats
from nats.aio.client import Client as NATS

from parley.v1 import stats_pb2
from parley_devstack.nats import EmbeddedNats
from parley_devstack.ports import free_port
from parley_devstack.postgres import EmbeddedPostgres
from parley_devstack.stack import http_status
from parley_protocol import subjects
from parley_protocol.errors import ParleyError
from parley_service.bus import request
from parley_service.client_requests import Caller
from tests.support.stats import call_report, device, upload

APP = "196087a1-e815-4bc4-8984-60d8d8a43f1d"  # an application key is a lowercase GUID
IN_FLIGHT = 200
POLL_SECONDS = 0.05
# How long the rows of a phase's accepted reports may take to show up.
STORE_SECONDS = 60.0


async def wait_ready(service: asyncio.subprocess.Process, port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while await http_status(port, "/readyz") != 200:
        if service.returncode is not None:
            raise RuntimeError(f"the stats service exited with {service.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("the stats service did not become ready")
        await asyncio.sleep(0.2)


class Phase:
    """One phase's uploads: when each was sent, accepted and seen stored (by call id)."""

    def __init__(self, count: int) -> None:
        self.uploads = [(device(APP, f"user-{i}"), call_report()) for i in range(count)]
        self.sent: dict[str, float] = {}
        self.accepted: dict[str, float] = {}
        self.stored: dict[str, float] = {}
        self.errors: Counter[str] = Counter()
        self.began = 0.0

    async def run(self, nc: NATS, pool: Any, rate: float | None) -> None:
        """Upload all (at `rate` a second, or as fast as answered with IN_FLIGHT in flight),
        then wait until every accepted report's row is visible."""
        slots = asyncio.Semaphore(IN_FLIGHT)
        since = datetime.now(UTC) - timedelta(seconds=1)
        done = asyncio.Event()
        watcher = asyncio.create_task(self._watch(pool, since, done))
        self.began = time.time()

        async def one(caller: Caller, report: stats_pb2.UploadCallReport) -> None:
            async with slots:
                self.sent[report.call_id] = time.time()
                try:
                    await upload(nc, caller, report)
                except ParleyError as err:
                    self.errors[err.code_name] += 1
                    return
                self.accepted[report.call_id] = time.time()

        tasks = []
        for index, (caller, report) in enumerate(self.uploads):
            tasks.append(asyncio.create_task(one(caller, report)))
            if rate:
                await asyncio.sleep(max(0.0, self.began + (index + 1) / rate - time.time()))
        await asyncio.gather(*tasks)
        done.set()
        await watcher

    async def _watch(self, pool: Any, since: datetime, uploads_done: asyncio.Event) -> None:
        """Poll the table for this phase's rows (those stored at or after the latest seen:
        one writer stores batches one after the other) until every accepted one is there."""
        deadline: float | None = None
        while not uploads_done.is_set() or self.accepted.keys() - self.stored.keys():
            if uploads_done.is_set() and deadline is None:
                deadline = time.monotonic() + STORE_SECONDS
            if deadline is not None and time.monotonic() > deadline:
                missing = len(self.accepted.keys() - self.stored.keys())
                raise RuntimeError(f"{missing} accepted reports not stored in {STORE_SECONDS} s")
            polled = time.time()
            rows = await pool.fetch(
                "SELECT call_id, stored_at FROM stats.call_reports"
                " WHERE application_key = $1 AND stored_at >= $2",
                APP,
                since,
            )
            for row in rows:
                if row["call_id"] in self.sent:
                    self.stored.setdefault(row["call_id"], polled)
                since = max(since, row["stored_at"])
            await asyncio.sleep(max(0.0, polled + POLL_SECONDS - time.time()))

    def figures(self) -> dict[str, Any]:
        answered = [self.accepted[c] - self.sent[c] for c in self.accepted]
        stored = [self.stored[c] - self.sent[c] for c in self.stored]
        return {
            "uploads": len(self.uploads),
            "accepted": len(self.accepted),
            "errors": dict(self.errors),
            "upload_p50_ms": round(percentile(answered, 50) * 1000, 1),
            "upload_p99_ms": round(percentile(answered, 99) * 1000, 1),
            "stored_p50_ms": round(percentile(stored, 50) * 1000, 1),
            "stored_p99_ms": round(percentile(stored, 99) * 1000, 1),
        }


def cpu_of(service: int, nats_server: EmbeddedNats, postgres: EmbeddedPostgres) -> dict[str, float]:
    found = {"service": cpu_seconds(service), "bench": cpu_seconds(os.getpid())}
    if nats_server.pid is not None:
        found["nats"] = cpu_seconds(nats_server.pid)
    if postgres.pid is not None:
        found["postgres"] = tree_cpu_seconds(postgres.pid)
    return found


async def aggregate(nc: NATS, since_ms: int, runs: int) -> dict[str, Any]:
    """`runs` queries of the application's aggregates from `since_ms` to now."""
    query = stats_pb2.CallAggregateQuery(
        application_key=APP, from_ms=since_ms, to_ms=int(time.time() * 1000) + 60_000
    )
    took: list[float] = []
    reply = stats_pb2.CallAggregate()
    for _ in range(runs):
        began = time.perf_counter()
        reply = await request(nc, subjects.STATS_AGGREGATE, query, stats_pb2.CallAggregate, 30.0)
        took.append(time.perf_counter() - began)
    return {
        "queries": runs,
        "reports": reply.reports,
        "calls": sum(c.calls for c in reply.counts),
        "p50_ms": round(percentile(took, 50) * 1000, 1),
        "max_ms": round(max(took) * 1000, 1),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="parley-bench-stats-"))
    nats_server = EmbeddedNats(home / "nats")
    postgres = EmbeddedPostgres(home / "pg")
    await nats_server.start()
    await postgres.start()
    database = await postgres.create_database("bench_stats")
    health = free_port()
    env = {
        **os.environ,
        "PARLEY_NATS_URL": nats_server.url,
        "PARLEY_DATABASE_URL": database,
        "PARLEY_HEALTH_PORT": str(health),
        "PARLEY_LOG_LEVEL": "WARNING",
    }
    service = await asyncio.create_subprocess_exec(sys.executable, "-m", "parley_stats", env=env)
    results: dict[str, Any] = {"bench": "stats"}
    pool: Any = None
    nc: NATS | None = None
    try:
        await wait_ready(service, health)
        pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
        nc = await nats.connect(nats_server.url)
        # Every report starts a minute before it is made: the window reaches back further.
        since_ms = int(time.time() * 1000) - 3_600_000
        await Phase(50).run(nc, pool, None)  # warm-up: connections, prepared statements

        paced = Phase(int(args.rate * args.seconds))
        await paced.run(nc, pool, args.rate)
        results["paced"] = {"rate": args.rate, **paced.figures()}

        burst = Phase(args.burst)
        before = cpu_of(service.pid, nats_server, postgres)
        await burst.run(nc, pool, None)
        used = {
            name: value - before[name]
            for name, value in cpu_of(service.pid, nats_server, postgres).items()
        }
        stored = len(burst.stored)
        results["burst"] = {
            **burst.figures(),
            "accepted_per_second": round(
                len(burst.accepted) / (max(burst.accepted.values()) - burst.began), 1
            ),
            "stored_per_second": round(stored / (max(burst.stored.values()) - burst.began), 1),
            # Where the two cores went while it ran: the service, NATS (the stream STATS),
            # PostgreSQL, and this process (the uploads and the polling).
            **{
                f"{name}_cpu_s_per_1000": round(value / stored * 1000, 3)
                for name, value in used.items()
            },
            "service_rss_mib": round(rss_kib(service.pid) / 1024, 1),
        }
        results["aggregate"] = await aggregate(nc, since_ms, args.queries)
    finally:
        if nc is not None:
            await nc.close()
        if pool is not None:
            await pool.close()
        service.terminate()
        try:
            await asyncio.wait_for(service.wait(), 30)
        except TimeoutError:
            service.kill()
        await postgres.stop()
        await nats_server.stop()
    return results


def show(results: dict[str, Any]) -> None:
    p, b, a = results["paced"], results["burst"], results["aggregate"]
    print(
        f"paced     {p['rate']:g}/s, {p['accepted']}/{p['uploads']} accepted: "
        f"upload -> accepted p50 {p['upload_p50_ms']} ms, p99 {p['upload_p99_ms']} ms; "
        f"upload -> stored p50 {p['stored_p50_ms']} ms, p99 {p['stored_p99_ms']} ms"
    )
    print(
        f"burst     {b['accepted']}/{b['uploads']} accepted: {b['accepted_per_second']}/s "
        f"accepted, {b['stored_per_second']}/s stored; upload -> accepted p50 "
        f"{b['upload_p50_ms']} ms, p99 {b['upload_p99_ms']} ms; upload -> stored p50 "
        f"{b['stored_p50_ms']} ms, p99 {b['stored_p99_ms']} ms"
    )
    print(
        f"          CPU s per 1,000 reports: service {b['service_cpu_s_per_1000']}, nats "
        f"{b.get('nats_cpu_s_per_1000')}, postgres {b.get('postgres_cpu_s_per_1000')}, "
        f"bench {b['bench_cpu_s_per_1000']}; service RSS {b['service_rss_mib']} MiB"
    )
    print(
        f"aggregate {a['queries']} queries over {a['reports']} reports ({a['calls']} calls): "
        f"p50 {a['p50_ms']} ms, slowest {a['max_ms']} ms"
    )
    for phase in (p, b):
        if phase["errors"]:
            print(f"errors: {phase['errors']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--burst", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=5)
    figures = asyncio.run(main(parser.parse_args()))
    show(figures)
    print(json.dumps(figures))
    errors = sum(sum(figures[phase]["errors"].values()) for phase in ("paced", "burst"))
    sys.exit(0 if errors == 0 else 1)
