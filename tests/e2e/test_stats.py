"""Call statistics end to end: the stats service as a process beside auth, two gateway
replicas and the calls service (every e2e stack runs it), a device uploading call reports
over its WebSocket, and the app's backend reading the aggregates over signed REST."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from parley_client import CallDirection, CallEndCause, CallKind
from parley_client.backend import BackendClient, CallCount, CallStats
from parley_protocol.errors import ErrorCode
from tests.support.calls import established_call
from tests.support.stats import call_report, now_ms
from tests.support.wire import RawClient, bounded, eventually

from .stack import E2EStack, calling_party


@bounded(60)
async def test_a_device_uploads_through_either_gateway_and_the_backend_reads_the_figures(
    stack: E2EStack,
) -> None:
    token = await stack.access_token("stats alice")
    on_a = await RawClient.open(stack.ws("gateway-a"))
    on_b = await RawClient.open(stack.ws("gateway-b"))
    try:
        await on_a.hello(token, stack.app_key, "stats alice")
        await on_b.hello(token, stack.app_key, "stats alice")
        start = now_ms() - 120_000
        report = call_report(str(uuid.uuid4()), started_at_ms=start, setup_ms=700)
        reply = await on_a.request(upload_call_report=report)
        assert reply.call_report_accepted.stored
        # The same device sending it again, through the other replica: not new.
        reply = await on_b.request(upload_call_report=report)
        assert not reply.call_report_accepted.stored
        # A bad report is refused with the field at fault; the session lives on.
        seq = await on_a.send(upload_call_report=call_report(mos=5.0))
        error = await on_a.expect_error(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, seq)
        assert error.field == "mos"
        await on_a.ping()
    finally:
        await on_a.close()
        await on_b.close()

    window = (
        datetime.fromtimestamp((start - 1_000) / 1000, UTC),
        datetime.fromtimestamp((start + 1_000) / 1000, UTC),
    )
    figures: list[CallStats] = []
    async with BackendClient(stack.http("gateway-b"), stack.app_key, stack.app_secret) as backend:

        async def stored() -> bool:
            figures.append(await backend.call_stats(*window))
            return figures[-1].reports > 0

        await eventually(stored, 10, "the report in the statistics")
    stats = figures[-1]
    assert stats.reports == 1
    assert stats.calls == (CallCount("app", "hung_up", 1),)
    assert (stats.setup_ms.samples, stats.setup_ms.p50) == (1, 700.0)


@bounded(90)
async def test_a_real_call_ends_and_both_reports_are_stored_once_and_counted(
    stack: E2EStack, tmp_path: Path
) -> None:
    """Two reference clients, real audio over aiortc: when alice hangs up, each device
    uploads its report by itself; the service stores both, once, and the application's
    aggregates count one answered app call with two MOS samples."""
    alice = await calling_party(stack, "alice stats.x*>", tmp_path / "a", ["gateway-a"], tone=440)
    bob = await calling_party(stack, "bob stats.y*>", tmp_path / "b", ["gateway-b"], tone=880)
    try:
        call, incoming = await established_call(alice, bob)
        await asyncio.sleep(1.5)  # audio flows and the media is sampled
        await call.hangup()
        await incoming.wait_ended(5)
        await call.wait_ended(5)
        mine, theirs = call.statistics, incoming.statistics
        assert mine is not None and theirs is not None
        assert (mine.call_id, theirs.call_id) == (call.call_id, call.call_id)
        assert (mine.kind, mine.direction, mine.remote) == (
            CallKind.APP,
            CallDirection.OUTGOING,
            "bob stats.y*>",
        )
        assert (theirs.direction, theirs.remote) == (CallDirection.INCOMING, "alice stats.x*>")
        for side in (mine, theirs):
            assert side.end_cause is CallEndCause.HUNG_UP
            assert side.codec == "opus/48000/2"
            assert side.received is not None and side.received.packets > 0
            assert side.sent is not None and side.sent.packets > 0
            assert side.talk_ms > 0
            assert 1.0 <= side.mos <= 4.5

        start = datetime.fromtimestamp(mine.started_at_ms / 1000, UTC)
        window = (start - timedelta(seconds=5), start + timedelta(seconds=5))
        figures: list[CallStats] = []
        async with BackendClient(
            stack.http("gateway-a"), stack.app_key, stack.app_secret
        ) as backend:

            async def both_stored() -> bool:
                figures.append(await backend.call_stats(*window))
                return figures[-1].reports >= 2

            await eventually(both_stored, 15, "both devices' reports in the statistics")
            # The clients go; nothing they send on the way out adds a third report.
            await alice.client.terminate()
            await bob.client.terminate()
            again = await backend.call_stats(*window)
        stats = figures[-1]
        assert again.reports == stats.reports == 2
        assert stats.calls == (CallCount("app", "hung_up", 1),)
        assert stats.mos.samples == 2
        assert min(mine.mos, theirs.mos) <= stats.mos.p50 <= max(mine.mos, theirs.mos)
        assert stats.setup_ms.samples >= 1
    finally:
        await alice.client.terminate()
        await bob.client.terminate()
