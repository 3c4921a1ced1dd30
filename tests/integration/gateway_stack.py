"""In-process auth + gateway(s) on real NATS and PostgreSQL, and a raw WebSocket client.

Used by the tests/integration/test_gateway_*.py modules (not a test module itself).
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from parley_auth import accounts
from parley_auth.app import MIGRATIONS as AUTH_MIGRATIONS
from parley_auth.app import setup as auth_setup
from parley_auth.secrets_box import SecretBox
from parley_auth.settings import AuthSettings
from parley_gateway.app import gateway_of
from parley_gateway.app import setup as gateway_setup
from parley_gateway.gateway import Gateway
from parley_gateway.settings import GatewaySettings
from parley_protocol import signatures
from parley_protocol.clock import SystemClock
from parley_protocol.pb import client
from parley_service import runtime as rt

SERVER_SCHEME = "REGISTRATION_SCHEME_APPLICATION_SERVER"
SECRET_SCHEME = "REGISTRATION_SCHEME_APPLICATION_SECRET"


@dataclass
class App:
    key: str
    secret: str


@dataclass
class Stack:
    """One auth replica, N gateways, and the HTTP session clients use."""

    nats_url: str
    auth: rt.Runtime
    master_key: bytes
    http: aiohttp.ClientSession
    gateways: list[rt.Runtime] = field(default_factory=list)

    def gateway(self, index: int = 0) -> Gateway:
        return gateway_of(self.gateways[index])

    def url(self, index: int = 0) -> str:
        return self.gateway(index).url

    async def add_gateway(self, **settings: Any) -> Gateway:
        values: dict[str, Any] = {
            "nats_url": self.nats_url,
            "health_port": 0,
            "gateway_port": 0,
            "gateway_id": f"gw-{uuid.uuid4().hex[:8]}",
            "drain_timeout_seconds": 5.0,
        }
        values.update(settings)
        runtime = await rt.start(GatewaySettings(**values), gateway_setup)
        self.gateways.append(runtime)
        return gateway_of(runtime)

    async def create_app(self, environment: str = "sandbox") -> App:
        clock = SystemClock()
        account = await accounts.create_account(self.auth.db, "Acme", clock)
        created = await accounts.create_application(
            self.auth.db, SecretBox(self.master_key), account.id, "Acme chat", environment, clock
        )
        return App(created.application.key, created.secret)

    async def post(self, path: str, body: Any, index: int = 0) -> tuple[int, Any]:
        kwargs: dict[str, Any] = (
            {"data": body} if isinstance(body, (bytes, str)) else {"json": body}
        )
        async with self.http.post(self.url(index) + path, **kwargs) as resp:
            return resp.status, await resp.json(content_type=None)

    async def register(self, app: App, user_id: str, sequence: int | None = None) -> dict[str, Any]:
        """Register over HTTP: app-server scheme when a sequence is given, else self-signed."""
        if sequence is not None:
            body: dict[str, Any] = {
                "application_key": app.key,
                "user_id": user_id,
                "scheme": SERVER_SCHEME,
                "signature": signatures.registration_signature(
                    user_id, app.key, sequence, app.secret
                ),
                "sequence": str(sequence),
            }
        else:
            ts = int(time.time() * 1000)
            body = {
                "application_key": app.key,
                "user_id": user_id,
                "scheme": SECRET_SCHEME,
                "signature": signatures.self_signed_registration(user_id, app.key, ts, app.secret),
                "timestamp_ms": str(ts),
            }
        status, reply = await self.post("/v1/register", body)
        assert status == 200, reply
        return dict(reply)

    async def token(self, app: App, user_id: str) -> str:
        reply = await self.register(app, user_id)
        token: str = reply["token"]["token"]
        return token

    async def connect(self, index: int = 0) -> RawClient:
        ws = await self.http.ws_connect(self.url(index) + "/v1/connect", autoping=True)
        return RawClient(ws)

    async def signed_in(
        self, app: App, user_id: str, index: int = 0, listening: bool = False
    ) -> RawClient:
        c = await self.connect(index)
        await c.hello(await self.token(app, user_id), app.key, user_id)
        if listening:
            await c.request(listen=client.Listen(listening=True))
        return c

    async def close(self) -> None:
        for runtime in self.gateways:
            await rt.stop(runtime, drain=False)
        await rt.stop(self.auth, drain=False)
        await self.http.close()


async def start_stack(
    nats_url: str, database_url: str, gateways: int = 1, token_ttl_seconds: int = 900, **gw: Any
) -> Stack:
    master_key = os.urandom(32)
    auth = await rt.start(
        AuthSettings(
            nats_url=nats_url,
            database_url=database_url,
            health_port=0,
            auth_master_key=base64.b64encode(master_key).decode(),
            auth_token_ttl_seconds=token_ttl_seconds,
        ),
        auth_setup,
        AUTH_MIGRATIONS,
    )
    stack = Stack(nats_url, auth, master_key, aiohttp.ClientSession())
    for _ in range(gateways):
        await stack.add_gateway(**gw)
    return stack


class RawClient:
    """A client speaking the wire protocol by hand: numbered Envelope frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seq = 0
        self.welcome = client.Welcome()

    async def send(self, seq: int | None = None, **body: Any) -> int:
        if seq is None:
            self.seq += 1
            seq = self.seq
        await self.ws.send_bytes(client.Envelope(seq=seq, **body).SerializeToString())
        return seq

    async def recv(self, timeout: float = 5.0) -> client.Envelope:
        msg = await self.ws.receive(timeout)
        assert msg.type == aiohttp.WSMsgType.BINARY, f"expected a frame, got {msg}"
        return client.Envelope.FromString(msg.data)

    async def request(self, timeout: float = 5.0, **body: Any) -> client.Envelope:
        seq = await self.send(**body)
        reply = await self.recv(timeout)
        assert reply.reply_to == seq, reply
        assert reply.WhichOneof("body") != "error", reply
        return reply

    async def hello(self, token: str, app_key: str, user_id: str) -> client.Welcome:
        reply = await self.request(
            hello=client.Hello(
                access_token=token,
                application_key=app_key,
                user_id=user_id,
                capabilities=client.Capabilities(calling=True, messaging=True),
                client_version="tests",
            )
        )
        self.welcome = reply.welcome
        return reply.welcome

    async def ping(self) -> client.Pong:
        reply = await self.request(ping=client.Ping(client_time_ms=123))
        return reply.pong

    async def expect_error(self, code: int, reply_to: int | None = None) -> client.Error:
        env = await self.recv()
        assert env.WhichOneof("body") == "error", env
        assert env.error.code == code, env.error
        if reply_to is not None:
            assert env.reply_to == reply_to, env
        return env.error

    async def expect_close(self, code: int, timeout: float = 5.0) -> None:
        msg = await self.ws.receive(timeout)
        assert msg.type == aiohttp.WSMsgType.CLOSE, f"expected a close, got {msg}"
        assert msg.data == code, f"closed with {msg.data} ({msg.extra!r}), expected {code}"

    async def close(self) -> None:
        await self.ws.close()


async def eventually(check: Any, timeout: float = 5.0) -> None:
    """Wait until `await check()` is true."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
