"""Every service's /metrics end to end: the whole stack `make run` runs (every folder under
services/), as processes, after a little traffic (clients signed in, a call, messages, a
managed push); each page must parse with the Prometheus text parser and hold the families
tests/support/metric_families.py lists for its service, the per-application ones labelled
with the application."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client import Metric

from parley_client import PushToken, WritableMessage
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_devstack.services import ServiceDef, discover
from parley_protocol.errors import ErrorCode
from tests.support.calls import established_call
from tests.support.messaging import Inbox
from tests.support.metric_families import SERVICES
from tests.support.metrics import exposed_name, scrape
from tests.support.providers import device_token
from tests.support.wire import bounded, eventually

from .stack import (
    E2EStack,
    calling_party,
    conference_def,
    make_client,
    messaging_def,
    push_def,
    running_stack,
    sip_def,
)

# The services stack.py knows how to run for tests; any other folder under services/ runs
# as its pyproject.toml says, on free ports.
KNOWN = {"auth", "gateway", "calls", "stats", "messaging", "push", "sip", "conference"}


def kind_of(service: ServiceDef) -> str:
    """`parley_gateway` (gateway-a, gateway-b, ...) -> `gateway`."""
    return service.module.removeprefix("parley_")


def others() -> list[ServiceDef]:
    return [
        dataclasses.replace(
            s,
            health_port=0,
            public_port=None if s.public_port is None else 0,
            restart=False,
        )
        for s in discover()
        if s.name not in KNOWN
    ]


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: EmbeddedNats,
    postgres_server: EmbeddedPostgres,
) -> AsyncIterator[E2EStack]:
    async with running_stack(
        tmp_path_factory.mktemp("metrics"),
        nats_server.url,
        postgres_server,
        gateways=("gateway-a",),
        extra=[messaging_def(), push_def(), sip_def(), conference_def(), *others()],
    ) as running:
        yield running


async def scrape_all(stack: E2EStack) -> dict[str, dict[str, Metric]]:
    """Every service's families, by service name (gateway-a, calls, ...)."""
    async with aiohttp.ClientSession() as http:
        return {
            s.name: await scrape(http, stack.devstack.ports[s.name].health)
            for s in stack.devstack.services
        }


def app_values(family: Metric) -> set[str]:
    """The `app` label values of a family's series (a series without one: the empty value)."""
    return {sample.labels.get("app", "") for sample in family.samples}


def value(family: Metric, sample: str = "", **labels: str) -> float:
    """The sum of a family's series (a histogram's `sample`: _count, _sum) with `labels`."""
    name = exposed_name(family) + sample
    return sum(
        s.value
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


@bounded(120)
async def test_every_service_exports_its_families_parsed_and_labelled_by_app(
    stack: E2EStack, tmp_path: Path
) -> None:
    unknown = {kind_of(s) for s in stack.devstack.services} - SERVICES.keys()
    assert not unknown, f"no expected families for {unknown}: add to metric_families.py"

    # Carol's device registers managed push (no provider credentials are set) and goes.
    carol = make_client(stack, "carol metrics", tmp_path / "carol")
    carol.set_support_managed_push(True)
    await carol.start()
    await carol.register_managed_push(PushToken.fcm(device_token()))
    await carol.terminate()

    gateway = ["gateway-a"]
    alice = await calling_party(stack, "alice metrics", tmp_path / "a", gateway, messaging=True)
    bob = await calling_party(stack, "bob metrics", tmp_path / "b", gateway, messaging=True)
    inbox = Inbox()
    alice.client.message_client.add_message_client_listener(inbox)
    try:
        call, incoming = await established_call(alice, bob)
        await call.hangup()
        await incoming.wait_ended(10)

        messages = alice.client.message_client
        messages.send(WritableMessage("bob metrics", "delivered"))
        await inbox.wait("delivered", 1)
        messages.send(WritableMessage("nobody metrics", "refused: never registered"))
        await inbox.wait("failed", 1)
        assert inbox.failed[0][1].error.error_code == ErrorCode.ERROR_CODE_NOT_FOUND
        messages.send(WritableMessage("carol metrics", "pushed: no device online"))
        await inbox.wait("sent", 2)  # to bob and to carol, whose device is pushed to

        found: dict[str, dict[str, Metric]] = {}

        async def counted() -> bool:
            """Every family by app has series (the push job is counted once the push service
            took it), and carol's session is gone."""
            found.update(await scrape_all(stack))
            sessions = found["gateway-a"]["parley_gateway_sessions"]
            return value(sessions, app=stack.app_key) == 2 and all(
                found[s.name][name].samples
                for s in stack.devstack.services
                for name in SERVICES[kind_of(s)].by_app
                if name in found[s.name]
            )

        await eventually(counted, 15, "a series in every family by app")

        for service in stack.devstack.services:
            expected = SERVICES[kind_of(service)]
            families = found[service.name]
            missing = expected.families - families.keys()
            assert not missing, f"{service.name} does not export {sorted(missing)}"
            for name in expected.by_app:
                # One application here: its key is its label (the first 50 are named).
                assert app_values(families[name]) == {stack.app_key}, (service.name, name)

        calls = found["calls"]
        assert value(calls["parley_calls_started_total"], kind="app", app=stack.app_key) == 1
        assert value(calls["parley_calls_ended_total"], cause="hung_up", app=stack.app_key) == 1
        assert value(calls["parley_calls_setup_seconds"], "_count", kind="app") == 1
        msg = found["messaging"]
        assert value(msg["parley_messaging_messages_accepted_total"]) == 2
        assert value(msg["parley_messaging_delivered_total"]) == 1
        assert value(msg["parley_messaging_messages_failed_total"]) == 1
        assert value(msg["parley_messaging_messages_refused_total"], code="NOT_FOUND") == 1
        jobs = found["push"]["parley_push_jobs_total"]
        assert value(jobs, provider="fcm", outcome="no_credentials") == 1
    finally:
        await alice.client.terminate()
        await bob.client.terminate()
