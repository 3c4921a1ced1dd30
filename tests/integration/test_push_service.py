"""The push service in process on real NATS and PostgreSQL, with local FCM and APNs servers:
Notify queues a managed push per device with a token and a pair per device with push data;
the senders deliver through the provider, retry through an outage, lose nothing when the
service stops with jobs queued, and forget dead tokens; payloads relay only for their user
and until they expire."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS

from parley.v1 import push_pb2
from parley_devstack.nats import EmbeddedNats
from parley_protocol import subjects
from parley_protocol.clock import Clock, FakeClock
from parley_protocol.errors import ErrorCode, ParleyError
from parley_push import credentials, store
from parley_push.app import MIGRATIONS, handlers_of
from parley_push.app import setup as push_setup
from parley_push.settings import PushSettings
from parley_push.tokens import provider_of
from parley_service import runtime as rt
from parley_service.bus import request
from parley_service.client_requests import Caller
from parley_service.secrets_box import SecretBox
from tests.support.metrics import sample_sum
from tests.support.providers import FakeApns, FakeFcm, LocalTls, device_token
from tests.support.providers.server import Request, Response
from tests.support.wire import bounded, eventually

MASTER_KEY = base64.b64encode(bytes(range(32, 64))).decode()
APP = "0123456789abcdef0123456789abcdef"


@pytest_asyncio.fixture(scope="module")
async def tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    return LocalTls.create(tmp_path_factory.mktemp("tls"))


@pytest_asyncio.fixture
async def fcm(tls: LocalTls) -> AsyncIterator[FakeFcm]:
    async with FakeFcm(tls) as fake:
        yield fake


@pytest_asyncio.fixture
async def apns(tls: LocalTls) -> AsyncIterator[FakeApns]:
    async with FakeApns(tls) as fake:
        yield fake


@asynccontextmanager
async def push_service(
    nats_url: str, database_url: str, tls: LocalTls, clock: Clock | None = None, **values: Any
) -> AsyncIterator[rt.Runtime]:
    settings: dict[str, Any] = {
        "nats_url": nats_url,
        "database_url": database_url,
        "health_port": 0,
        "drain_timeout_seconds": 2.0,
        "auth_master_key": MASTER_KEY,
        "push_ca_file": str(tls.ca_file),
        "push_retry_base_seconds": 0.2,
        "push_retry_max_seconds": 0.5,
        "push_credentials_cache_seconds": 0.0,
    }
    settings.update(values)
    runtime = await rt.start(PushSettings(**settings), push_setup, MIGRATIONS, clock)
    try:
        yield runtime
    finally:
        await rt.stop(runtime, drain=False)


async def set_credentials(runtime: rt.Runtime, provider: str, document: dict[str, Any]) -> None:
    box = SecretBox(base64.b64decode(MASTER_KEY))
    sealed = credentials.seal(box, APP, provider, document)
    await store.set_credentials(runtime.db, APP, provider_of(provider), sealed, datetime.now(UTC))


def caller(user_id: str, instance: str | None = None) -> Caller:
    return Caller(
        application_key=APP,
        user_id=user_id,
        instance_id=instance or str(uuid.uuid4()),
        session_id=str(uuid.uuid4()),
        gateway_id="gw",
        connection_id="c",
        capabilities=frozenset(),
    )


def call_notify(
    user_id: str, call_id: str | None = None, now_ms: int | None = None
) -> push_pb2.NotifyRequest:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return push_pb2.NotifyRequest(
        application_key=APP,
        recipient_ids=[user_id],
        call=push_pb2.CallPush(
            call_id=call_id or str(uuid.uuid4()),
            caller_user_id="alice x.*>",
            started_at_ms=now_ms,
            ring_until_ms=now_ms + 60_000,
        ),
    )


async def notify(bus: NATS, message: push_pb2.NotifyRequest) -> push_pb2.NotifyReply:
    return await request(bus, subjects.PUSH_NOTIFY, message, push_pb2.NotifyReply)


@pytest_asyncio.fixture
async def service(
    nats_server: EmbeddedNats, database_url: str, tls: LocalTls, fcm: FakeFcm
) -> AsyncIterator[rt.Runtime]:
    async with push_service(nats_server.url, database_url, tls) as runtime:
        await set_credentials(
            runtime, "fcm", {"service_account": fcm.service_account(), "endpoint": fcm.url}
        )
        yield runtime


@bounded(30)
async def test_notify_pushes_managed_devices_and_pairs_the_others(
    service: rt.Runtime, fcm: FakeFcm, bus: NATS
) -> None:
    handlers = handlers_of(service)
    bob = "bob 1.x*>"
    phone, tablet, browser = caller(bob), caller(bob), caller(bob)
    await handlers.register_managed_push(
        phone,
        push_pb2.RegisterManagedPush(
            provider=push_pb2.PUSH_PROVIDER_FCM, token="fcm-registration-token-0001"
        ),
    )
    registered = await handlers.register_push_data(
        tablet, push_pb2.RegisterPushData(push_data=b"tablet")
    )
    assert registered.push_data and registered.managed_provider == 0
    await handlers.register_push_data(browser, push_pb2.RegisterPushData(push_data=b"gone"))
    await handlers.unregister_push_data(browser, push_pb2.UnregisterPushData())

    reply = await notify(bus, call_notify(bob))
    (recipient,) = reply.recipients
    assert recipient.recipient_id == bob and recipient.managed == 1
    assert [p.push_data for p in recipient.push_pairs] == [b"tablet"]
    await eventually(
        lambda: _some(fcm.pushes_to("fcm-registration-token-0001")), 10, "the FCM push"
    )
    (push,) = fcm.pushes_to("fcm-registration-token-0001")
    assert push.kind == "call"
    # The pushed payload and the pair's are the same signed payload for bob, and relay.
    assert push.payload.encode() == recipient.push_pairs[0].push_payload
    relayed = await handlers.relay_push_payload(
        caller(bob), push_pb2.RelayPushPayload(payload=recipient.push_pairs[0].push_payload)
    )
    assert relayed.call.caller_user_id == "alice x.*>"
    with pytest.raises(ParleyError) as refused:
        await handlers.relay_push_payload(
            caller("eve"), push_pb2.RelayPushPayload(payload=push.payload.encode())
        )
    assert refused.value.code == ErrorCode.ERROR_CODE_PERMISSION_DENIED


@bounded(60)
async def test_an_outage_is_retried_and_a_stopped_service_loses_no_job(
    nats_server: EmbeddedNats,
    database_url: str,
    tls: LocalTls,
    service: rt.Runtime,
    fcm: FakeFcm,
    bus: NATS,
) -> None:
    bob = "bob 2.x*>"
    await handlers_of(service).register_managed_push(
        caller(bob),
        push_pb2.RegisterManagedPush(
            provider=push_pb2.PUSH_PROVIDER_FCM, token="fcm-registration-token-0002"
        ),
    )
    fcm.start_outage(retry_after=0.3)
    before = fcm.requests
    retries = _counted("fcm", "retry")
    await notify(bus, call_notify(bob))
    await eventually(lambda: _true(fcm.requests >= before + 3), 10, "retries during the outage")
    assert fcm.pushes_to("fcm-registration-token-0002") == []
    # The outage shows in the metrics (a retry is counted once its answer is handled,
    # just after the provider saw the request).
    await eventually(
        lambda: _true(_counted("fcm", "retry") >= retries + 2), 10, "retries in the metrics"
    )
    # The replica stops with the job unsent; a new one takes it over once the outage ends.
    await rt.stop(service, drain=False)
    fcm.end_outage()
    async with push_service(nats_server.url, database_url, tls):
        await eventually(
            lambda: _some(fcm.pushes_to("fcm-registration-token-0002")),
            15,
            "the push after the outage",
        )
    assert len(fcm.pushes_to("fcm-registration-token-0002")) == 1


class SlowFcm(FakeFcm):
    """FCM answering each push only after `hold` seconds."""

    hold = 0.0

    async def handle(self, request: Request) -> Response:
        if request.path != "/token":
            await asyncio.sleep(self.hold)
        return await super().handle(request)


class CountingFcm(SlowFcm):
    """SlowFcm that keeps the most pushes it had under way at once."""

    under_way = 0
    most = 0

    async def handle(self, request: Request) -> Response:
        if request.path == "/token":
            return await super().handle(request)
        self.under_way += 1
        self.most = max(self.most, self.under_way)
        try:
            return await super().handle(request)
        finally:
            self.under_way -= 1


@bounded(60)
async def test_no_more_pushes_are_under_way_than_the_concurrency_allows(
    nats_server: EmbeddedNats, database_url: str, tls: LocalTls, bus: NATS
) -> None:
    async with (
        CountingFcm(tls) as fcm,
        push_service(nats_server.url, database_url, tls, push_concurrency=3) as runtime,
    ):
        await set_credentials(
            runtime, "fcm", {"service_account": fcm.service_account(), "endpoint": fcm.url}
        )
        users = [(f"carol {i}.x*>", f"fcm-registration-token-01{i:02d}") for i in range(8)]
        for user, token in users:
            await handlers_of(runtime).register_managed_push(
                caller(user),
                push_pb2.RegisterManagedPush(provider=push_pb2.PUSH_PROVIDER_FCM, token=token),
            )
        fcm.hold = 0.5
        for user, _ in users:
            await notify(bus, call_notify(user))
        for _, token in users:
            await eventually(lambda t=token: _some(fcm.pushes_to(t)), 15, f"the push to {token}")
        assert fcm.most == 3  # the three slots were all used, and never more


@bounded(60)
async def test_a_job_at_work_longer_than_its_ack_wait_is_not_given_out_again(
    nats_server: EmbeddedNats,
    database_url: str,
    tls: LocalTls,
    bus: NATS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An ack wait of 1.5 s (the consumer is updated to it, and back at the next start).
    monkeypatch.setattr("parley_push.jobs.ACK_WAIT_SECONDS", 1.5)
    monkeypatch.setattr("parley_push.senders.ACK_WAIT_SECONDS", 1.5)
    async with (
        SlowFcm(tls) as fcm,
        push_service(nats_server.url, database_url, tls) as runtime,
    ):
        await set_credentials(
            runtime, "fcm", {"service_account": fcm.service_account(), "endpoint": fcm.url}
        )
        bob, token = "bob 5.x*>", "fcm-registration-token-0005"
        await handlers_of(runtime).register_managed_push(
            caller(bob),
            push_pb2.RegisterManagedPush(provider=push_pb2.PUSH_PROVIDER_FCM, token=token),
        )
        fcm.hold = 4.0  # the provider takes more than twice the ack wait to answer
        before = fcm.requests - fcm.token_requests
        await notify(bus, call_notify(bob))
        await eventually(lambda: _some(fcm.pushes_to(token)), 15, "the slow push")
        await asyncio.sleep(2.0)  # a job given out again would have been sent again by now
        assert len(fcm.pushes_to(token)) == 1
        assert fcm.requests - fcm.token_requests - before == 1
        assert _counted("fcm", "sent") >= 1


@bounded(30)
async def test_a_dead_token_is_forgotten(service: rt.Runtime, apns: FakeApns, bus: NATS) -> None:
    key = apns.new_key()
    await set_credentials(
        service,
        "apns",
        {
            "private_key": key.private_key_pem,
            "team_id": key.team_id,
            "key_id": key.key_id,
            "topic": apns.topic,
            "endpoint": apns.url,
        },
    )
    bob, token = "bob 3.x*>", device_token()
    device = caller(bob)
    await handlers_of(service).register_managed_push(
        device, push_pb2.RegisterManagedPush(provider=push_pb2.PUSH_PROVIDER_APNS, token=token)
    )
    apns.mark_dead(token)
    await notify(bus, call_notify(bob))

    async def forgotten() -> bool:
        row = await store.device(service.db, APP, bob, device.instance_id)
        return row is not None and row.token is None

    await eventually(forgotten, 10, "the dead token forgotten")


@bounded(30)
async def test_payloads_expire_and_bad_tokens_are_refused(
    nats_server: EmbeddedNats, database_url: str, tls: LocalTls, fcm: FakeFcm, bus: NATS
) -> None:
    clock = FakeClock()
    async with push_service(nats_server.url, database_url, tls, clock=clock) as runtime:
        handlers = handlers_of(runtime)
        bob = "bob 4.x*>"
        await handlers.register_push_data(caller(bob), push_pb2.RegisterPushData(push_data=b"d"))
        reply = await notify(bus, call_notify(bob, now_ms=int(clock.time() * 1000)))
        payload = reply.recipients[0].push_pairs[0].push_payload
        await handlers.relay_push_payload(caller(bob), push_pb2.RelayPushPayload(payload=payload))
        clock.advance(60 + 300 + 1)  # rang a minute, then the grace of five
        with pytest.raises(ParleyError) as expired:
            await handlers.relay_push_payload(
                caller(bob), push_pb2.RelayPushPayload(payload=payload)
            )
        assert expired.value.code == ErrorCode.ERROR_CODE_STALE_TIMESTAMP
        bad = {
            push_pb2.PUSH_PROVIDER_APNS: "not hex",
            push_pb2.PUSH_PROVIDER_WEB_PUSH: '{"endpoint": "http://x"}',
            push_pb2.PUSH_PROVIDER_FCM: "has spaces in it",
            push_pb2.PUSH_PROVIDER_UNSPECIFIED: "token",
        }
        for provider, token in bad.items():
            with pytest.raises(ParleyError) as refused:
                await handlers.register_managed_push(
                    caller(bob), push_pb2.RegisterManagedPush(provider=provider, token=token)
                )
            assert refused.value.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT, token
        with pytest.raises(ParleyError) as too_big:
            await handlers.register_push_data(
                caller(bob), push_pb2.RegisterPushData(push_data=b"x" * 1025)
            )
        assert too_big.value.code == ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE


def _counted(provider: str, outcome: str) -> float:
    return sample_sum("parley_push_jobs_total", provider=provider, outcome=outcome)


async def _some(found: list[Any]) -> bool:
    return bool(found)


async def _true(value: bool) -> bool:
    return value


@bounded(60)
async def test_a_push_replica_process_drains_and_exits_on_sigterm(
    nats_server: EmbeddedNats, database_url: str, tls: LocalTls, tmp_path: Path
) -> None:
    """As `make run` and Kubernetes stop it: SIGTERM, then exit well within the grace time
    (an open pull subscription once held the NATS drain for its 30 s timeout)."""
    health = _free_port()
    env = {
        **os.environ,
        "PARLEY_NATS_URL": nats_server.url,
        "PARLEY_DATABASE_URL": database_url,
        "PARLEY_AUTH_MASTER_KEY": MASTER_KEY,
        "PARLEY_HEALTH_PORT": str(health),
        "PARLEY_PUSH_CA_FILE": str(tls.ca_file),
        "PARLEY_DRAIN_TIMEOUT_SECONDS": "5",
    }
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "parley_push", env=env)
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{health}/readyz") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(ready, 20, "the push service ready")
        await asyncio.sleep(1.5)  # its senders are pulling
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 15)
        assert code == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
