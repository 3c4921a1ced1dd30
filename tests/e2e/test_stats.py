"""Call statistics end to end: the stats service as a process beside auth, two gateway
replicas and the calls service (every e2e stack runs it), a device uploading call reports
over its WebSocket, and the app's backend reading the aggregates over signed REST."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from parley_client.backend import BackendClient, CallCount, CallStats
from parley_protocol.errors import ErrorCode
from tests.support.stats import call_report, now_ms
from tests.support.wire import RawClient, bounded, eventually

from .stack import E2EStack


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
