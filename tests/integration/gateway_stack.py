"""In-process auth + gateway(s) on real NATS and PostgreSQL, and a raw WebSocket client.

Used by the tests/integration/test_gateway_*.py modules (not a test module itself).
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import aiohttp

from parley_auth import accounts
from parley_auth.app import setup as auth_setup
from parley_auth.migrations import MIGRATIONS as AUTH_MIGRATIONS
from parley_auth.settings import AuthSettings
from parley_devstack.postgres import EmbeddedPostgres
from parley_gateway.app import gateway_of
from parley_gateway.app import setup as gateway_setup
from parley_gateway.gateway import Gateway
from parley_gateway.settings import GatewaySettings
from parley_protocol.clock import SystemClock
from parley_protocol.pb import client
from parley_service import runtime as rt
from parley_service.secrets_box import SecretBox
from tests.support.wire import (  # noqa: F401 (re-exported for the gateway tests)
    SECRET_SCHEME,
    SERVER_SCHEME,
    RawClient,
    SignedInDevice,
    eventually,
    registration_body,
)


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
        status, reply = await self.post(
            "/v1/register", registration_body(app.key, app.secret, user_id, sequence)
        )
        assert status == 200, reply
        return dict(reply)

    async def token(self, app: App, user_id: str) -> str:
        reply = await self.register(app, user_id)
        token: str = reply["token"]["token"]
        return token

    async def connect(self, index: int = 0, autoping: bool = True) -> RawClient:
        """`autoping`: the client answers the gateway's Pings as it reads (False: it reads
        them and never answers)."""
        ws = await self.http.ws_connect(self.url(index) + "/v1/connect", autoping=autoping)
        return RawClient(ws)

    async def signed_in(
        self,
        app: App,
        user_id: str,
        index: int = 0,
        listening: bool = False,
        autoping: bool = True,
    ) -> RawClient:
        c = await self.connect(index, autoping)
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


@asynccontextmanager
async def module_stack(
    nats_url: str, postgres_server: EmbeddedPostgres, prefix: str, **kwargs: Any
) -> AsyncIterator[Stack]:
    """A stack on a database of its own, dropped afterwards (for module-scoped fixtures)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    dsn = await postgres_server.create_database(name)
    started = await start_stack(nats_url, dsn, **kwargs)
    try:
        yield started
    finally:
        await started.close()
        await postgres_server.drop_database(name)


D = TypeVar("D", bound=SignedInDevice)


class People(Generic[D]):
    """Signs users' devices in on a stack (each wrapped by `make`, a SignedInDevice of a
    capability's tests), and closes them all afterwards."""

    def __init__(self, stack: Stack, app: App, make: Callable[[RawClient, str], D]) -> None:
        self.stack = stack
        self.app = app
        self._make = make
        self.devices: list[D] = []

    async def device(
        self, user: str, gateway: int = 0, listening: bool = True, app: App | None = None
    ) -> D:
        raw = await self.stack.signed_in(app or self.app, user, gateway, listening=listening)
        device = self._make(raw, user)
        self.devices.append(device)
        return device

    async def close(self) -> None:
        for device in self.devices:
            await device.raw.close()


def unique_user(name: str) -> str:
    """A user ID no other test of the stack uses."""
    return f"{name}-{uuid.uuid4().hex[:6]}"
