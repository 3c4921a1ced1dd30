"""Services as separate processes for end-to-end tests: the same DevStack as `make run`,
on free ports, against the session's NATS (or one of its own) and a fresh database."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from parley_client import CallQualitySettings, ParleyClient, ToneSource
from parley_devstack.postgres import EmbeddedPostgres
from parley_devstack.services import ServiceDef
from parley_devstack.stack import DevStack, StackSettings
from tests.support.calls import Follower, Party
from tests.support.wire import registration_body

ECHO = ServiceDef(name="echo", module="tests.support.echo", health_port=0, restart=False)
"""The echo test service (tests/support/echo), run as a process like any service."""


def make_client(
    stack: E2EStack, user: str, state: Path, secret: bool = True, gateways: list[str] | None = None
) -> ParleyClient:
    builder = (
        ParleyClient.builder()
        .application_key(stack.app_key)
        .user_id(user)
        .environment_hosts([stack.host(g) for g in gateways or stack.gateways])
        .persistence_dir(state)
    )
    if secret:
        builder.application_secret(stack.app_secret)
    client = builder.build()
    client.set_support_messaging(True)
    return client


def calls_def(env: Mapping[str, str] | None = None) -> ServiceDef:
    """The calls service, as a process (settings such as timeouts or TURN in `env`)."""
    return ServiceDef(
        name="calls", module="parley_calls", health_port=0, env=dict(env or {}), restart=False
    )


def _schema_service(
    name: str, env: Mapping[str, str] | None, restart: bool, master_key: bool = False
) -> ServiceDef:
    """A service with its own schema, as a process (settings in `env`)."""
    return ServiceDef(
        name=name,
        module=f"parley_{name}",
        health_port=0,
        env=dict(env or {}),
        database=True,
        master_key=master_key,
        restart=restart,
    )


def messaging_def(env: Mapping[str, str] | None = None, restart: bool = False) -> ServiceDef:
    """The messaging service."""
    return _schema_service("messaging", env, restart)


def push_def(env: Mapping[str, str] | None = None, restart: bool = False) -> ServiceDef:
    """The push service (it opens provider credentials with the master key)."""
    return _schema_service("push", env, restart, master_key=True)


def stats_def(env: Mapping[str, str] | None = None, restart: bool = False) -> ServiceDef:
    """The stats service (every stack runs it: clients upload a report after each call)."""
    return _schema_service("stats", env, restart)


def gateway_def(
    name: str, env: Mapping[str, str] | None = None, restart: bool = False
) -> ServiceDef:
    return ServiceDef(
        name=name,
        module="parley_gateway",
        health_port=0,
        public_port=0,
        public_port_env="PARLEY_GATEWAY_PORT",
        env={"PARLEY_GATEWAY_ID": name, **(env or {})},
        restart=restart,
    )


@dataclass
class E2EStack:
    devstack: DevStack
    log: io.StringIO

    @property
    def app(self) -> dict[str, Any]:
        return self.devstack.sandbox_app

    @property
    def app_key(self) -> str:
        return str(self.app["application_key"])

    @property
    def app_secret(self) -> str:
        return str(self.app["application_secret"])

    def host(self, gateway: str) -> str:
        port = self.devstack.ports[gateway].public
        return f"127.0.0.1:{port}"

    def http(self, gateway: str) -> str:
        return f"http://{self.host(gateway)}"

    def ws(self, gateway: str) -> str:
        return f"ws://{self.host(gateway)}/v1/connect"

    @property
    def gateways(self) -> list[str]:
        return [s.name for s in self.devstack.services if s.module == "parley_gateway"]

    def kill(self, name: str) -> None:
        """Crash a service's process (SIGKILL); it is not restarted."""
        assert self.devstack.supervisor.kill(name), f"{name} was not running"

    async def admin(self, *args: str) -> dict[str, Any] | None:
        return await self.devstack._admin(*args)

    async def register(
        self, user_id: str, gateway: str = "gateway-a", sequence: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST /v1/register (self-signed unless a sequence is given): (status, JSON body)."""
        body = registration_body(self.app_key, self.app_secret, user_id, sequence)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.http(gateway)}/v1/register", json=body) as resp:
                return resp.status, await resp.json(content_type=None)

    async def access_token(self, user_id: str, gateway: str = "gateway-a") -> str:
        status, body = await self.register(user_id, gateway)
        assert status == 200, body
        return str(body["token"]["token"])

    def output(self) -> str:
        return self.log.getvalue()


@contextlib.asynccontextmanager
async def running_stack(
    home: Path, nats_url: str, postgres: EmbeddedPostgres, **options: Any
) -> AsyncIterator[E2EStack]:
    """A stack (see start_stack; `options` are its arguments) on a database of its own,
    its output printed when the block fails, stopped afterwards."""
    db = await postgres.create_database(f"e2e_{home.name.replace('-', '_')[:40]}")
    running = await start_stack(home, nats_url, db, **options)
    try:
        yield running
    except BaseException:
        print(running.output())
        raise
    finally:
        await running.devstack.stop()


async def start_stack(
    home: Path,
    nats_url: str,
    database_url: str,
    gateways: Sequence[str] = ("gateway-a", "gateway-b"),
    auth_env: Mapping[str, str] | None = None,
    extra: Sequence[ServiceDef] = (),
    gateway_env: Mapping[str, str] | None = None,
    calls_env: Mapping[str, str] | None = None,
    stats_env: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> E2EStack:
    """Auth, the gateways, the calls and the stats service as processes (plus `extra`);
    `env` is given to every one of them (a service's own settings win)."""
    services = [
        ServiceDef(
            name="auth",
            module="parley_auth",
            health_port=0,
            env=dict(auth_env or {}),
            database=True,
            master_key=True,
        ),
        *(gateway_def(g, gateway_env) for g in gateways),
        calls_def(calls_env),
        stats_def(stats_env),
        *extra,
    ]
    if env:
        services = [dataclasses.replace(s, env={**env, **s.env}) for s in services]
    settings = StackSettings(
        home=home,
        nats_url=nats_url,
        database_url=database_url,
        master_key=base64.b64encode(os.urandom(32)).decode(),
    )
    log = io.StringIO()
    devstack = DevStack(settings, services=services, out=log)
    try:
        await devstack.start()
    except BaseException:
        await devstack.stop()
        print(log.getvalue())
        raise
    return E2EStack(devstack, log)


@contextlib.asynccontextmanager
async def running_party(
    stack: E2EStack, user: str, state: Path, gateways: list[str], **options: Any
) -> AsyncIterator[Party]:
    """calling_party (`options` are its keyword arguments), terminated when the block ends."""
    party = await calling_party(stack, user, state, gateways, **options)
    try:
        yield party
    finally:
        await party.client.terminate()


async def calling_party(
    stack: E2EStack,
    user: str,
    state: Path,
    gateways: list[str],
    *,
    tone: float | None = None,
    relay: bool = False,
    inactive: float | None = None,
    app: tuple[str, str] | None = None,
    messaging: bool = False,
    quality: CallQualitySettings | None = None,
    media: bool = True,
) -> Party:
    """A user's client with calling and real media (ICE on loopback only), listening
    (and messaging when asked); `media=False`: signalling only."""
    key, secret = app or (stack.app_key, stack.app_secret)
    builder = (
        ParleyClient.builder()
        .application_key(key)
        .application_secret(secret)
        .user_id(user)
        .environment_hosts([stack.host(g) for g in gateways])
        .persistence_dir(state)
        .ice_host_addresses(["127.0.0.1"])
    )
    if not media:
        builder.media(False)
    if relay:
        builder.ice_transport_policy("relay")
    if inactive is not None:
        builder.inactive_timeout(inactive)
    if quality is not None:
        builder.call_quality(quality)
    client = builder.build()
    client.set_support_calling(True)
    client.set_support_messaging(messaging)
    party = Party(client)
    client.call_client.add_call_client_listener(Follower(party))
    if tone is not None:
        client.audio_controller.set_source(ToneSource(tone))
    await client.start()
    await client.start_listening_on_active_connection()
    return party


def trunk_env(port: int) -> dict[str, str]:
    """Settings of a sip service whose trunk is on 127.0.0.1:`port` (a far phone or sipp
    listens there in a test), telling auth how long its calls last every second."""
    return {
        "PARLEY_SIP_TRUNK_HOST": "127.0.0.1",
        "PARLEY_SIP_TRUNK_PORT": str(port),
        "PARLEY_SIP_CREDIT_TOUCH_SECONDS": "1",
    }


def sip_def(env: Mapping[str, str] | None = None, name: str = "sip") -> ServiceDef:
    """The sip service, its WebRTC kept on loopback (trunk and other settings in `env`)."""
    return _leg_service("sip", name, env)


def conference_def(env: Mapping[str, str] | None = None, name: str = "conference") -> ServiceDef:
    """The conference service, its WebRTC kept on loopback (settings in `env`)."""
    return _leg_service("conference", name, env)


def _leg_service(service: str, name: str, env: Mapping[str, str] | None) -> ServiceDef:
    """A service that holds calls' far sides, its WebRTC on loopback."""
    return ServiceDef(
        name=name,
        module=f"parley_{service}",
        health_port=0,
        env={f"PARLEY_{service.upper()}_ICE_HOST_ADDRESSES": "127.0.0.1", **(env or {})},
        restart=False,
    )
