"""GET /v1/stats/calls through a real gateway and a real auth, with the stats service in
process, on NATS and PostgreSQL: an app backend's signed request reads the aggregates of
the reports devices uploaded, by hand and through the client's BackendClient; bad query
parameters get problems naming them."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS

from parley.v1 import calls_pb2, stats_pb2
from parley_client.backend import BackendClient, CallCount, Percentiles
from parley_client.errors import ParleyError as SdkError
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_service import runtime as rt
from tests.integration.gateway_stack import App, Stack, module_stack
from tests.integration.test_gateway_rest import conforms, problem, send
from tests.support.stats import call_report, device, now_ms, stats_service, upload
from tests.support.wire import bounded, eventually

PATH = "/v1/stats/calls"


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> AsyncIterator[Stack]:
    async with module_stack(nats_server.url, postgres_server, "test_stats_rest") as s:
        yield s


@pytest_asyncio.fixture
async def stats(nats_server: EmbeddedNats, database_url: str) -> AsyncIterator[rt.Runtime]:
    async with stats_service(nats_server.url, database_url) as runtime:
        yield runtime


def calls_path(start: str | int, end: str | int) -> str:
    query = urllib.parse.urlencode({"from": str(start), "to": str(end)})
    return f"{PATH}?{query}"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@bounded(30)
async def test_a_signed_request_reads_the_aggregates_of_a_window(
    stack: Stack, app: App, stats: rt.Runtime, bus: NATS
) -> None:
    start = (now_ms() // 1000 - 3_600) * 1000  # an hour ago, on a whole second
    answered = str(uuid.uuid4())
    reports = [
        (device(app.key, "alice"), call_report(answered, started_at_ms=start, setup_ms=400)),
        (
            device(app.key, "bob"),
            call_report(
                answered,
                direction=stats_pb2.CALL_DIRECTION_INCOMING,
                started_at_ms=start + 10,
                setup_ms=600,
                mos=3.6,
            ),
        ),
        (
            device(app.key, "alice"),
            call_report(
                kind=calls_pb2.CALL_KIND_PHONE,
                end_cause=calls_pb2.CALL_END_CAUSE_NO_ANSWER,
                started_at_ms=start + 60_000,
                setup_ms=0,
                mos=0.0,
            ),
        ),
    ]
    for caller, report in reports:
        assert (await upload(bus, caller, report)).stored

    async def all_stored() -> bool:
        count = await stats.db.fetchval(
            "SELECT count(*) FROM stats.call_reports WHERE application_key = $1", app.key
        )
        return bool(count == len(reports))

    await eventually(all_stored, 10, "the reports stored")
    end = start + 3_600_000
    # `from` as ISO 8601 with an offset, `to` in milliseconds.
    start_text = (
        datetime.fromtimestamp(start / 1000, UTC)
        .astimezone(timezone(timedelta(hours=2)))
        .isoformat()
    )
    status, answer = await send(stack, app, "GET", calls_path(start_text, end))
    assert status == 200, answer
    conforms(answer, "CallStats")
    assert answer["application"] == app.key
    assert (answer["from"], answer["to"]) == (
        iso(start).replace("Z", ".000Z"),
        iso(end).replace("Z", ".000Z"),
    )
    assert answer["reports"] == 3
    assert sorted(answer["calls"], key=lambda c: c["kind"]) == [
        {"kind": "app", "endCause": "hung_up", "calls": 1},
        {"kind": "phone", "endCause": "no_answer", "calls": 1},
    ]
    assert answer["setupMs"] == {"samples": 2, "p50": 500.0, "p90": 580.0, "p99": 598.0}
    assert answer["mos"]["samples"] == 2
    assert answer["mos"]["p50"] == pytest.approx(3.9)

    async with BackendClient(stack.url(), app.key, app.secret) as backend:
        read = await backend.call_stats(
            datetime.fromtimestamp(start / 1000, UTC), datetime.fromtimestamp(end / 1000, UTC)
        )
        assert (read.application, read.reports) == (app.key, 3)
        assert read.from_time == datetime.fromtimestamp(start / 1000, UTC)
        assert sorted(read.calls, key=lambda c: c.kind) == [
            CallCount("app", "hung_up", 1),
            CallCount("phone", "no_answer", 1),
        ]
        assert read.setup_ms == Percentiles(2, 500.0, 580.0, 598.0)
        # A window before the calls: nothing, and no percentiles.
        earlier = await backend.call_stats(start - 60_000, start)
        assert (earlier.reports, earlier.calls) == (0, ())
        assert earlier.mos == Percentiles(0, None, None, None)


@bounded(30)
async def test_bad_query_parameters_get_problems_naming_them(
    stack: Stack, app: App, stats: rt.Runtime
) -> None:
    now = now_ms()
    cases = [
        (f"{PATH}?to={now}", "from", "is missing"),
        (calls_path(now - 1_000, "tomorrow"), "to", "neither"),
        (calls_path("2026-11-01T00:00:00", now), "from", "no zone"),
        (calls_path(now, now - 1), "to", "after its start"),
        (calls_path(now - 40 * 86_400_000, now), "to", "limit is 31 days"),
        (f"{PATH}?from=1&from=2&to={now}", "from", "given 2 times"),
    ]
    for path, field, words in cases:
        status, answer = await send(stack, app, "GET", path)
        problem(status, answer, 400, "INVALID_ARGUMENT", words)
        assert answer["field"] == field, answer
    # The query is signed: a request whose window was changed on the way is refused.
    status, answer = await send(
        stack, app, "GET", calls_path(0, 1_000), sign_path=calls_path(0, 2_000)
    )
    problem(status, answer, 401, "INVALID_SIGNATURE")
    # The client's helper says what the gateway said.
    wrong = "c2VjcmV0c2VjcmV0c2VjcmV0"
    async with BackendClient(stack.url(), app.key, wrong) as backend:
        with pytest.raises(SdkError) as info:
            await backend.call_stats(now - 1_000, now)
        assert info.value.code == "INVALID_SIGNATURE"


@bounded(30)
async def test_without_a_stats_service_the_route_is_unavailable(stack: Stack, app: App) -> None:
    now = now_ms()
    status, answer = await send(stack, app, "GET", calls_path(now - 1_000, now))
    problem(status, answer, 503, "UNAVAILABLE", "the stats service is not available")
