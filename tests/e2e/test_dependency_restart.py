"""A dependency blip needs no service restarted: NATS killed (-9) and started again with the
same command line, port and store, or PostgreSQL stopped immediately and started again,
under auth and two gateway replicas with signed-in clients."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats as nats_py
import pytest_asyncio

from parley.v1 import echo_pb2
from parley_client import ParleyClient
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_devstack.services import ServiceDef
from parley_devstack.stack import DevStack, StackSettings
from parley_service.devices import DeviceEvents
from tests.support.wire import RawClient, eventually

from .stack import E2EStack, gateway_def, make_client, start_stack

RECOVERY_GOAL_SECONDS = 5.0


@dataclass
class Blip:
    stack: E2EStack
    nats: EmbeddedNats
    postgres: EmbeddedPostgres
    home: Path


@pytest_asyncio.fixture
async def blip(tmp_path: Path) -> AsyncIterator[Blip]:
    """A stack on a NATS and a PostgreSQL of its own, which the test may kill."""
    nats = EmbeddedNats(tmp_path / "nats")
    postgres = EmbeddedPostgres(tmp_path / "pg")
    await nats.start()
    await postgres.start()
    stack: E2EStack | None = None
    try:
        db = await postgres.create_database("blip")
        stack = await start_stack(tmp_path / "home", nats.url, db)
        yield Blip(stack, nats, postgres, tmp_path)
    finally:
        if stack is not None:
            await stack.devstack.stop()
        await postgres.stop()
        await nats.stop()


async def _listening(stack: E2EStack, user: str, state: Path, gateway: str) -> ParleyClient:
    client = make_client(stack, user, state, gateways=[gateway])
    await client.start()
    await client.start_listening_on_active_connection()
    return client


async def _online(observer: ParleyClient, users: list[str]) -> bool:
    try:
        seen = await observer.presence(users, timeout=1.0)
    except Exception:
        return False
    return all(seen[u].online for u in users)


def _starts(stack: E2EStack) -> dict[str, int]:
    sup = stack.devstack.supervisor
    return {name: sup.status(name).starts for name in sup.names}


async def _event_reaches(raw: RawClient, events: DeviceEvents, app: str, user: str) -> bool:
    """A device event published now reaches `raw` (its session works end to end)."""
    await events.to_user(app, user, echo_pb2.EchoEvent(text="still there?"))
    try:
        frame = await raw.recv(timeout=1.0)
    except (TimeoutError, AssertionError):
        return False
    return frame.WhichOneof("body") == "echo_event"


async def test_a_nats_restart_is_survived_without_restarting_a_service(blip: Blip) -> None:
    stack = blip.stack
    alice = await _listening(stack, "alice", blip.home / "a", "gateway-a")
    bob = await _listening(stack, "bob o.*>", blip.home / "b", "gateway-b")
    raw = await RawClient.open(stack.ws("gateway-b"))
    await raw.hello(await stack.access_token("carl"), stack.app_key, "carl")
    before = _starts(stack)
    try:
        await eventually(lambda: _online(alice, ["alice", "bob o.*>"]), what="both online")

        assert blip.nats.kill()
        await asyncio.sleep(1.0)  # down for a moment, as a pod restart would be
        restarted = time.monotonic()
        await blip.nats.start()

        bus = await nats_py.connect(blip.nats.url)
        try:
            # Presence shows every connected device again, through either replica.
            presence_back = await eventually(
                lambda: _online(alice, ["alice", "bob o.*>"]),
                timeout=RECOVERY_GOAL_SECONDS,
                what="presence of both devices after the restart",
            )
            assert await _online(bob, ["alice", "bob o.*>"])
            # A new client signs in.
            newcomer = make_client(stack, "dora", blip.home / "d")
            await newcomer.start()
            signed_in = time.monotonic() - restarted
            await newcomer.terminate()
            assert signed_in < RECOVERY_GOAL_SECONDS
            # Existing sessions keep working: events reach a session signed in before.
            await eventually(
                lambda: _event_reaches(raw, DeviceEvents(bus), stack.app_key, "carl"),
                timeout=RECOVERY_GOAL_SECONDS,
                what="a device event to a session from before the restart",
            )
        finally:
            await bus.close()
        print(
            f"\nNATS restart: presence back in {presence_back:.2f} s, new sign-in at {signed_in:.2f} s"
        )
        assert alice.is_started and bob.is_started
        # The memory-stored presence bucket was made again and refilled, not waited for.
        assert stack.output().count("presence_rewritten") >= 2
        assert _starts(stack) == before, "a service was restarted"
    finally:
        await raw.close()
        await alice.terminate()
        await bob.terminate()


async def test_a_postgres_restart_is_survived_without_restarting_a_service(blip: Blip) -> None:
    stack = blip.stack
    alice = await _listening(stack, "alice", blip.home / "a", "gateway-a")
    before = _starts(stack)
    try:
        await blip.postgres.stop(immediate=True)
        # Meanwhile a registration is refused with a retryable error, not lost in silence.
        status, body = await stack.register("erin")
        assert status == 503, body
        assert body["code"] == "UNAVAILABLE"
        await blip.postgres.start()
        restarted = time.monotonic()

        async def registers() -> bool:
            status, _ = await stack.register("frank")
            return status == 200

        await eventually(registers, timeout=RECOVERY_GOAL_SECONDS, what="registration again")
        newcomer = make_client(stack, "gina", blip.home / "g")
        await newcomer.start()
        recovered = time.monotonic() - restarted
        await newcomer.terminate()
        print(f"\nPostgreSQL restart: registrations and sign-ins back in {recovered:.2f} s")
        assert alice.is_started
        assert (await alice.presence(["alice"]))["alice"].online
        assert _starts(stack) == before, "a service was restarted"
    finally:
        await alice.terminate()


async def test_make_run_brings_back_its_embedded_nats_and_postgres(tmp_path: Path) -> None:
    """`make run`'s own NATS and PostgreSQL die: it starts them again with the same data on
    the same ports, and clients sign in without a service being restarted."""
    base = Path(tempfile.mkdtemp(prefix="parley-test-run-"))  # see the postgres_server fixture
    os.chmod(base, 0o755)
    services = [
        ServiceDef(
            name="auth", module="parley_auth", health_port=0, database=True, master_key=True
        ),
        gateway_def("gateway"),
    ]
    settings = StackSettings(home=base / "home", nats_port=0)
    out = io.StringIO()
    devstack = DevStack(settings, services=services, out=out)
    try:
        await devstack.start()
        stack = E2EStack(devstack, out)
        assert devstack.nats is not None and devstack.postgres is not None
        nats_url, database_url = devstack.nats_url, devstack.database_url
        before = _starts(stack)
        for server in (devstack.nats, devstack.postgres):
            old_pid = server.pid
            assert server.kill()
            await eventually(
                lambda s=server, p=old_pid: _alive_again(s, p),  # type: ignore[misc]
                timeout=30,
                what=f"{type(server).__name__} started again",
            )
            client = make_client(stack, "after a crash", tmp_path / str(old_pid), ["gateway"])
            await eventually(lambda c=client: _starts_ok(c), timeout=15, what="a client signs in")
            await client.terminate()
        # The addresses the banner showed are still the ones in use.
        assert (devstack.nats_url, devstack.database_url) == (nats_url, database_url)
        assert "NATS exited; starting it again" in out.getvalue()
        assert "PostgreSQL exited; starting it again" in out.getvalue()
        assert _starts(stack) == before, "a service was restarted"
    finally:
        await devstack.stop()
        shutil.rmtree(base, ignore_errors=True)


async def _alive_again(server: EmbeddedNats | EmbeddedPostgres, old_pid: int | None) -> bool:
    return server.running and server.pid != old_pid


async def _starts_ok(client: ParleyClient) -> bool:
    try:
        await client.start()
    except Exception:
        return False
    return True
