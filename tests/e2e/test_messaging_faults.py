"""Messages survive crashes: during a burst of 10,000 messages between 100 clients, the
messaging service is killed with SIGKILL once and a gateway replica once, and the supervisor
restarts each. Every message reaches every recipient exactly once at the app level, none is
lost, none fails, and every sender hears sent and delivered for each recipient."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from parley_client import ParleyClient, WritableMessage
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from tests.support.messaging import Inbox, listen, settle
from tests.support.wire import bounded, eventually

from .stack import E2EStack, gateway_def, messaging_def, start_stack

CLIENTS = 100
MESSAGES = 10_000
RATE = 500.0  # messages a second, all senders together
KILL_MESSAGING_AT = MESSAGES // 4
KILL_GATEWAY_AT = MESSAGES * 6 // 10


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: EmbeddedNats,
    postgres_server: EmbeddedPostgres,
) -> AsyncIterator[E2EStack]:
    home = tmp_path_factory.mktemp("msgfaults")
    db = await postgres_server.create_database(f"e2e_msgf_{home.name.replace('-', '_')[:30]}")
    running = await start_stack(
        home,
        nats_server.url,
        db,
        gateways=(),
        extra=[
            gateway_def("gateway-a", restart=True),
            gateway_def("gateway-b", restart=True),
            messaging_def(restart=True),
        ],
    )
    try:
        yield running
    finally:
        await running.devstack.stop()


def build(stack: E2EStack, user_id: str, state: Path, first: str) -> ParleyClient:
    hosts = [stack.host(first)] + [stack.host(g) for g in stack.gateways if g != first]
    client = (
        ParleyClient.builder()
        .application_key(stack.app_key)
        .application_secret(stack.app_secret)
        .user_id(user_id)
        .environment_hosts(hosts)
        .persistence_dir(state)
        .media(False)
        .build()
    )
    client.set_support_messaging(True)
    return client


@pytest.mark.timeout(360)
@bounded(300)
async def test_a_burst_survives_a_messaging_and_a_gateway_crash(
    stack: E2EStack, tmp_path: Path
) -> None:
    users = [f"user {i}.x*>" for i in range(CLIENTS)]
    clients = [
        build(stack, u, tmp_path / str(i), stack.gateways[i % 2]) for i, u in enumerate(users)
    ]
    inboxes: dict[str, Inbox] = {u: listen(c) for u, c in zip(users, clients, strict=True)}
    gate = asyncio.Semaphore(20)

    async def start(client: ParleyClient) -> None:
        async with gate:
            await client.start()
            client.start_listening_on_active_connection()

    await asyncio.gather(*(start(c) for c in clients))
    try:
        rng = random.Random(7)
        expected: dict[str, tuple[str, str]] = {}  # message id -> (sender, recipient)
        began = time.monotonic()
        for n in range(MESSAGES):
            if n == KILL_MESSAGING_AT:
                stack.kill("messaging")
            if n == KILL_GATEWAY_AT:
                stack.kill("gateway-a")
            s, r = rng.sample(range(CLIENTS), 2)
            message = clients[s].message_client.send(WritableMessage(users[r], f"m{n}"))
            expected[message.message_id] = (users[s], users[r])
            delay = began + (n + 1) / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        for name in ("messaging", "gateway-a"):
            assert stack.devstack.supervisor.status(name).starts == 2, name

        per_recipient = Counter(r for _, r in expected.values())
        per_sender = Counter(s for s, _ in expected.values())

        def missing() -> dict[str, int]:
            return {
                "incoming": sum(max(0, per_recipient[u] - len(inboxes[u].incoming)) for u in users),
                "sent": sum(max(0, per_sender[u] - len(inboxes[u].sent)) for u in users),
                "delivered": sum(max(0, per_sender[u] - len(inboxes[u].delivered)) for u in users),
                "unsent": sum(len(c.message_client.unsent) for c in clients),
            }

        async def all_arrived() -> bool:
            return not any(missing().values())

        try:
            took = await eventually(all_arrived, 180, "every message, sent and delivered")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; missing: {missing()}") from None
        print(f"all arrived {took:.1f} s after the last send")
        await settle(2.0)

        for u in users:
            inbox = inboxes[u]
            got = Counter(inbox.incoming_ids())
            assert all(count == 1 for count in got.values()), f"{u} got a message twice"
            assert set(got) == {m for m, (_, r) in expected.items() if r == u}, u
            mine = {(m, r) for m, (s, r) in expected.items() if s == u}
            assert set(inbox.sent_pairs()) == mine and max(inbox.sent_pairs().values()) == 1, u
            delivered = inbox.delivered_pairs()
            assert set(delivered) == mine and max(delivered.values()) == 1, u
            assert inbox.failed == [], (u, inbox.failed[:3])
    finally:
        await asyncio.gather(*(c.terminate() for c in clients), return_exceptions=True)
