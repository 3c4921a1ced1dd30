"""Measure the gateway's memory per idle signed-in connection (RSS of the gateway process).

    python services/gateway/bench/memory_per_connection.py N [gateway|nocompress|compress]

Starts NATS, PostgreSQL and auth (in this process), the gateway as its own process
(`python -m parley_gateway`), registers N users, opens N WebSocket sessions (Hello ->
Welcome) from client processes, and reports the gateway's RSS growth per connection.
nocompress|compress measure a bare aiohttp WebSocket server the same way, for comparison.
Then SIGTERM drains the gateway with every client connected (KILL_CLIENTS_FIRST=1: after
dropping them all at once) and the time it takes is printed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import nats

from parley_auth import accounts
from parley_auth.app import MIGRATIONS, setup
from parley_auth.secrets_box import SecretBox
from parley_auth.settings import AuthSettings
from parley_devstack.nats import EmbeddedNats
from parley_devstack.ports import free_port
from parley_devstack.postgres import EmbeddedPostgres
from parley_protocol import signatures, subjects
from parley_protocol.clock import SystemClock
from parley_protocol.pb import auth as auth_pb
from parley_service import runtime as rt
from parley_service.bus import request

PER_PROCESS = 9_000

BARE_SERVER = r"""
import sys
from aiohttp import web
async def handler(request):
    ws = web.WebSocketResponse(compress=(sys.argv[2] == "compress"))
    await ws.prepare(request)
    async for msg in ws:
        await ws.send_bytes(msg.data)
    return ws
app = web.Application()
app.router.add_get("/v1/connect", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

CLIENT = r"""
import asyncio, json, sys
import aiohttp
from parley_protocol.pb import client

async def main():
    url, app_key, bare = sys.argv[1], sys.argv[2], sys.argv[3] != "gateway"
    tokens = json.load(open(sys.argv[4]))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    sockets = []
    sem = asyncio.Semaphore(200)
    async def one(user, token):
        async with sem:
            ws = await session.ws_connect(url, autoping=True, compress=0)
            hello = client.Envelope(seq=1, hello=client.Hello(
                access_token=token, application_key=app_key, user_id=user))
            await ws.send_bytes(hello.SerializeToString())
            reply = client.Envelope.FromString((await ws.receive(30)).data)
            assert bare or reply.WhichOneof("body") == "welcome", reply
            sockets.append(ws)
    await asyncio.gather(*(one(u, t) for u, t in tokens))
    print(len(sockets), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not up")
            await asyncio.sleep(0.1)


def spawn_clients(
    url: str, app_key: str, tokens: list[tuple[str, str]], mode: str, tmp: Path
) -> list[subprocess.Popen[str]]:
    """Client processes of at most PER_PROCESS connections each (the fd limit is per process)."""
    procs = []
    for i in range(0, len(tokens), PER_PROCESS):
        path = tmp / f"tokens{i}.json"
        path.write_text(json.dumps(tokens[i : i + PER_PROCESS]))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", CLIENT, url, app_key, mode, str(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def spawn_server(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[str]:
    with log_path.open("w") as log:
        return subprocess.Popen(cmd, env=env, stderr=log, text=True)


async def open_clients(
    url: str, app_key: str, tokens: list[tuple[str, str]], mode: str, tmp: Path
) -> tuple[list[subprocess.Popen[str]], int]:
    procs = spawn_clients(url, app_key, tokens, mode, tmp)
    opened = 0
    for p in procs:
        assert p.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, p.stdout.readline)
        opened += int(line)
    return procs, opened


def close_clients(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.close()
        p.terminate()
        p.wait()


async def main(n: int, mode: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="gwmem"))
    nats_server = EmbeddedNats(tmp / "nats")
    await nats_server.start()
    pg = EmbeddedPostgres(tmp / "pg")
    await pg.start()
    server = None
    procs: list[subprocess.Popen[str]] = []
    auth = None
    try:
        dsn = await pg.create_database("mem")
        master = os.urandom(32)
        auth = await rt.start(
            AuthSettings(
                nats_url=nats_server.url,
                database_url=dsn,
                auth_master_key=base64.b64encode(master).decode(),
                log_level="WARNING",
            ),
            setup,
            MIGRATIONS,
        )
        clock = SystemClock()
        account = await accounts.create_account(auth.db, "Mem", clock)
        app = await accounts.create_application(
            auth.db, SecretBox(master), account.id, "mem", "sandbox", clock
        )
        key, secret = app.application.key, app.secret
        nc = await nats.connect(nats_server.url)
        sem = asyncio.Semaphore(100)

        async def register(user: str) -> tuple[str, str]:
            async with sem:
                ts = int(time.time() * 1000)
                req = auth_pb.RegisterRequest(
                    application_key=key,
                    user_id=user,
                    scheme=auth_pb.REGISTRATION_SCHEME_APPLICATION_SECRET,
                    signature=signatures.self_signed_registration(user, key, ts, secret),
                    timestamp_ms=ts,
                )
                reply = await request(nc, subjects.AUTH_REGISTER, req, auth_pb.RegisterResponse, 30)
                return user, reply.token.token

        started = time.monotonic()
        warmup = await asyncio.gather(*(register(f"warm {i}") for i in range(300)))
        tokens = await asyncio.gather(*(register(f"user {i}") for i in range(n)))
        print(f"registered {n + 300} users in {time.monotonic() - started:.1f} s")

        port, health = free_port(), free_port()
        env = {
            **os.environ,
            "PARLEY_NATS_URL": nats_server.url,
            "PARLEY_GATEWAY_PORT": str(port),
            "PARLEY_HEALTH_PORT": str(health),
            "PARLEY_GATEWAY_ID": "mem",
            "PARLEY_HEARTBEAT_INTERVAL_MS": "3600000",
            "PARLEY_LOG_LEVEL": "WARNING",
        }
        if mode == "gateway":
            cmd = [sys.executable, "-m", "parley_gateway"]
        else:
            cmd = [sys.executable, "-c", BARE_SERVER, str(port), mode]
        server = spawn_server(cmd, env, tmp / "server.log")
        await wait_http(f"http://127.0.0.1:{port}/v1/connect")
        url = f"http://127.0.0.1:{port}/v1/connect"

        # Warm up: first-use allocations (imports, caches, metric children) are not per-connection.
        warm, _ = await open_clients(url, key, warmup, mode, tmp)
        close_clients(warm)
        await asyncio.sleep(2)
        before = rss_kib(server.pid)
        procs, opened = await open_clients(url, key, tokens, mode, tmp)
        await asyncio.sleep(3)
        after = rss_kib(server.pid)
        print(
            f"{mode}: {opened} idle connections: RSS {before} KiB -> {after} KiB, "
            f"{(after - before) / opened:.2f} KiB per connection"
        )
        await nc.close()
        # Drain with every client still connected: all sessions get 1012, then exit.
        if os.environ.get("KILL_CLIENTS_FIRST"):
            for p in procs:
                p.kill()
        started = time.monotonic()
        server.terminate()
        await asyncio.get_running_loop().run_in_executor(None, server.wait)
        print(f"drained {opened} sessions and exited in {time.monotonic() - started:.1f} s")
        print("server log:", tmp / "server.log")
    finally:
        close_clients(procs)
        if server is not None:
            server.terminate()
            server.wait()
        if auth is not None:
            await rt.stop(auth, drain=False)
        await pg.stop()
        await nats_server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "gateway"))
