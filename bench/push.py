"""Managed pushes through the push service to local provider servers: throughput and
enqueue -> provider latency, for each provider kind (FCM, APNs over HTTP/2, Web Push).

Starts NATS and PostgreSQL (embedded, free ports, temp dir), the push service as
`--replicas` processes (1; more share the Notify requests and the jobs),
and the local FCM, APNs and Web Push servers of the tests (HTTPS with a test CA, checking
authentication and payloads as the providers do) in this process. For each provider: N
devices of N users with a token of that provider, credentials set as parley-push-admin
would, then, after a warm-up (200 Notify requests at once: the provider connections a
busy replica keeps open, its tokens), three phases of Notify requests (what the calls and
messaging services send for a user with no device online), one user each:

- paced:     `--rate` a second for `--seconds`: p50/p99 Notify sent -> the provider got it;
- offered:   `--offered` a second (the goal's 1,000) for `--seconds`: the rate the provider
             got them at, and p50/p99;
- saturated: `--burst` at once (at most 200 Notify requests in flight): pushes a second
             from the first Notify to the last arrival, and p50/p99.

Prints the figures, the push service's CPU per push (its replicas together), then one JSON
line.

    .venv/bin/python bench/push.py [--devices N] [--rate R] [--seconds S] [--burst B]
                                   [--replicas N] [--kinds fcm,apns,web_push]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from measure import cpu_seconds, percentile, tree_cpu_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

import nats

from parley.v1 import push_pb2
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_protocol import subjects
from parley_push import credentials, store
from parley_push.tokens import provider_of
from parley_service.bus import request
from parley_service.secrets_box import SecretBox
from tests.support.providers import (
    FakeApns,
    FakeFcm,
    FakeProvider,
    FakeWebPush,
    LocalTls,
    device_token,
    vapid_key_pair,
)

APP = "0123456789abcdef0123456789abcdef"
IN_FLIGHT = 200


async def wait_ready(port: int, timeout: float = 60.0) -> None:
    import aiohttp

    began = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - began < timeout:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the push service did not become ready")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Kind:
    def __init__(self, name: str, fake: FakeProvider, document: dict[str, Any], tokens: list[str]):
        self.name, self.fake, self.document, self.tokens = name, fake, document, tokens


async def kinds(tls: LocalTls, devices: int) -> list[Kind]:
    fcm, apns, web = FakeFcm(tls), FakeApns(tls), FakeWebPush(tls)
    for fake in (fcm, apns, web):
        await fake.start()
    key = apns.new_key()
    vapid = vapid_key_pair()
    return [
        Kind(
            "fcm",
            fcm,
            {"service_account": fcm.service_account(), "endpoint": fcm.url},
            [f"fcm-bench-registration-token-{i:06d}" for i in range(devices)],
        ),
        Kind(
            "apns",
            apns,
            {
                "private_key": key.private_key_pem,
                "team_id": key.team_id,
                "key_id": key.key_id,
                "topic": apns.topic,
                "endpoint": apns.url,
            },
            [device_token() for _ in range(devices)],
        ),
        Kind(
            "web_push",
            web,
            {"private_key": vapid.private_key_pem, "subject": "mailto:bench@example.com"},
            [web.subscribe(vapid.public_key) for _ in range(devices)],
        ),
    ]


def stored_token(kind: str, token: str) -> str:
    if kind != "web_push":
        return token
    sub = json.loads(token)
    return json.dumps({"endpoint": sub["endpoint"], "keys": sub["keys"]}, separators=(",", ":"))


async def phase(
    nc: Any, kind: Kind, users: list[str], pace: float | None
) -> tuple[list[float], float]:
    """Notify once per user (paced at `pace` a second, or all at once with IN_FLIGHT in
    flight); wait until the provider has them all. (latencies, seconds first send -> last
    arrival)."""
    sent: dict[str, float] = {}
    seen = len(kind.fake.pushes)  # what the provider had before this phase
    first: dict[str, float] = {}  # token: when its first push of this phase arrived
    slots = asyncio.Semaphore(IN_FLIGHT)
    began = time.time()

    async def one(index: int, user: str) -> None:
        async with slots:
            sent[kind.tokens[index]] = time.time()
            await request(
                nc,
                subjects.PUSH_NOTIFY,
                push_pb2.NotifyRequest(
                    application_key=APP,
                    recipient_ids=[user],
                    message=push_pb2.MessagePush(
                        message_id=f"m-{index}-{time.time_ns()}",
                        sender_id="bench sender",
                        timestamp_ms=int(time.time() * 1000),
                    ),
                ),
                push_pb2.NotifyReply,
                30.0,
            )

    tasks = []
    for index, user in enumerate(users):
        tasks.append(asyncio.create_task(one(index, user)))
        if pace:
            await asyncio.sleep(max(0.0, began + (index + 1) / pace - time.time()))
    await asyncio.gather(*tasks)
    deadline = time.monotonic() + 60
    while len(first) < len(users):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{kind.name}: not every push arrived within 60 s")
        await asyncio.sleep(0.05)
        records = kind.fake.pushes
        for record in records[seen:]:
            first.setdefault(record.token, record.arrived)
        seen = len(records)
    latencies = [first[token] - sent[token] for token in sent]
    return latencies, max(first.values()) - began


def others_cpu(nats_server: EmbeddedNats, postgres: EmbeddedPostgres) -> dict[str, float]:
    found = {"bench": cpu_seconds(os.getpid())}
    if nats_server.pid is not None:
        found["nats"] = cpu_seconds(nats_server.pid)
    if postgres.pid is not None:
        found["postgres"] = tree_cpu_seconds(postgres.pid)
    return found


async def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="parley-bench-push-"))
    nats_server = EmbeddedNats(home / "nats")
    postgres = EmbeddedPostgres(home / "pg")
    await nats_server.start()
    await postgres.start()
    master_key = base64.b64encode(os.urandom(32)).decode()
    database = await postgres.create_database("bench_push")
    tls = LocalTls.create(home)
    found = await kinds(tls, args.devices)
    env = {
        **os.environ,
        "PARLEY_NATS_URL": nats_server.url,
        "PARLEY_DATABASE_URL": database,
        "PARLEY_AUTH_MASTER_KEY": master_key,
        "PARLEY_PUSH_CA_FILE": str(tls.ca_file),
        "PARLEY_LOG_LEVEL": "WARNING",
    }
    healths = [free_port() for _ in range(args.replicas)]
    replicas = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "parley_push", env={**env, "PARLEY_HEALTH_PORT": str(health)}
        )
        for health in healths
    ]

    def service_cpu() -> float:
        return sum(cpu_seconds(replica.pid) for replica in replicas)

    results: dict[str, Any] = {}
    try:
        for health in healths:
            await wait_ready(health)
        import asyncpg

        pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
        box = SecretBox(base64.b64decode(master_key))
        now = datetime.now(UTC)
        for kind in found:
            await store.set_credentials(
                pool,
                APP,
                provider_of(kind.name),
                credentials.seal(box, APP, kind.name, kind.document),
                now,
            )
            for i, token in enumerate(kind.tokens):
                await store.set_managed(
                    pool,
                    APP,
                    f"{kind.name} user {i}.*>",
                    f"device-{i}",
                    provider_of(kind.name),
                    stored_token(kind.name, token),
                    now,
                )
        nc = await nats.connect(nats_server.url)
        wanted = set(args.kinds.split(","))
        for kind in [kind for kind in found if kind.name in wanted]:
            users = [f"{kind.name} user {i}.*>" for i in range(args.devices)]
            await phase(nc, kind, users[:IN_FLIGHT], None)  # warm-up: connections, tokens
            paced_n = min(len(users), int(args.rate * args.seconds))
            paced, _ = await phase(nc, kind, users[:paced_n], args.rate)
            offered_n = min(len(users), int(args.offered * args.seconds))
            offered, offered_took = await phase(nc, kind, users[:offered_n], args.offered)
            burst_users = (users * (args.burst // len(users) + 1))[: args.burst]
            cpu_before = service_cpu()
            others_before = others_cpu(nats_server, postgres)
            saturated: list[float] = []
            total_seconds = 0.0
            done = 0
            for start in range(0, len(burst_users), len(users)):  # one push per device a round
                chunk = burst_users[start : start + len(users)]
                lat, took = await phase(nc, kind, chunk, None)
                saturated += lat
                total_seconds += took
                done += len(chunk)
            cpu = service_cpu() - cpu_before
            others = {
                name: value - others_before[name]
                for name, value in others_cpu(nats_server, postgres).items()
            }
            figures = {
                "paced_rate": args.rate,
                "paced_p50_ms": round(percentile(paced, 50) * 1000, 1),
                "paced_p99_ms": round(percentile(paced, 99) * 1000, 1),
                "offered_rate": args.offered,
                "offered_delivered_per_second": round(offered_n / offered_took, 1),
                "offered_p50_ms": round(percentile(offered, 50) * 1000, 1),
                "offered_p99_ms": round(percentile(offered, 99) * 1000, 1),
                "saturated_pushes": done,
                "saturated_per_second": round(done / total_seconds, 1),
                "saturated_p50_ms": round(percentile(saturated, 50) * 1000, 1),
                "saturated_p99_ms": round(percentile(saturated, 99) * 1000, 1),
                "service_cpu_ms_per_push": round(cpu / done * 1000, 2),
                # Where the rest of the two cores went: this process (the three local
                # providers and the Notify requests), NATS and PostgreSQL.
                **{
                    f"{name}_cpu_ms_per_push": round(value / done * 1000, 2)
                    for name, value in others.items()
                },
            }
            results[kind.name] = figures
            print(f"{kind.name:9} " + "  ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
        await nc.close()
        await pool.close()
    finally:
        for replica in replicas:
            replica.terminate()
        for replica in replicas:
            try:
                await asyncio.wait_for(replica.wait(), 30)
            except TimeoutError:
                replica.kill()
        for kind in found:
            await kind.fake.stop()
        await postgres.stop()
        await nats_server.stop()
    print(
        json.dumps({"bench": "push", "devices": args.devices, "replicas": args.replicas, **results})
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--offered", type=float, default=1000.0)
    parser.add_argument("--burst", type=int, default=3000)
    parser.add_argument("--replicas", type=int, default=1, help="push service processes")
    parser.add_argument(
        "--kinds", default="fcm,apns,web_push", help="providers to measure, comma-separated"
    )
    asyncio.run(main(parser.parse_args()))
