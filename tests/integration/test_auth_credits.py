"""Call credits in the auth service against real NATS and PostgreSQL: reserve, touch and
settle over the bus, the expiry sweeper, and the admin CLI's credit and rate commands."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from parley.v1 import credits_pb2
from parley_auth import admin, credit_admin, credits
from parley_auth.app import setup
from parley_auth.credit_handlers import sweep_expired
from parley_auth.keys import to_datetime
from parley_auth.migrations import MIGRATIONS
from parley_protocol import subjects
from parley_protocol.clock import FakeClock
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import runtime as rt
from tests.integration.test_auth_admin import base_env, cli, cli_json
from tests.integration.test_auth_service import AuthEnv, auth_settings, start_env, stop_env

SF = "+14155550101"
UNIT = 1_000_000


@pytest_asyncio.fixture
async def env(nats_server: Any, database_url: str) -> AsyncIterator[AuthEnv]:
    started = await start_env(
        nats_server.url,
        database_url,
        FakeClock(time.time()),
        auth_credit_sweep_seconds=0.05,
    )
    try:
        await credit_admin.set_rate(started.db, "+1", 500_000, "US", started.clock)
        await credit_admin.set_rate(started.db, "+1415", 1_200_000, "San Francisco", started.clock)
        yield started
    finally:
        await stop_env(started)


def new_call() -> str:
    return str(uuid.uuid4())


async def reserve(env: AuthEnv, call_id: str, number: str = SF) -> credits_pb2.ReserveCreditReply:
    reply: credits_pb2.ReserveCreditReply = await env.call(
        subjects.AUTH_CREDITS_RESERVE,
        credits_pb2.ReserveCreditRequest(
            application_key=env.app_key, call_id=call_id, number=number
        ),
        credits_pb2.ReserveCreditReply,
    )
    return reply


async def reserve_refused(env: AuthEnv, call_id: str, number: str = SF, **kw: Any) -> ParleyError:
    request = credits_pb2.ReserveCreditRequest(
        application_key=kw.get("app_key", env.app_key), call_id=call_id, number=number
    )
    return await env.refused(subjects.AUTH_CREDITS_RESERVE, request, credits_pb2.ReserveCreditReply)


async def touch(env: AuthEnv, call_id: str, duration_ms: int) -> None:
    await env.call(
        subjects.AUTH_CREDITS_TOUCH,
        credits_pb2.TouchCreditRequest(
            application_key=env.app_key, call_id=call_id, duration_ms=duration_ms
        ),
        credits_pb2.TouchCreditReply,
    )


def settle_request(env: AuthEnv, call_id: str, duration_ms: int) -> credits_pb2.SettleCreditRequest:
    return credits_pb2.SettleCreditRequest(
        application_key=env.app_key, call_id=call_id, duration_ms=duration_ms
    )


async def settle(env: AuthEnv, call_id: str, duration_ms: int) -> credits_pb2.SettleCreditReply:
    reply: credits_pb2.SettleCreditReply = await env.call(
        subjects.AUTH_CREDITS_SETTLE,
        settle_request(env, call_id, duration_ms),
        credits_pb2.SettleCreditReply,
    )
    return reply


async def top_up(env: AuthEnv, amount: str) -> None:
    await credit_admin.top_up(env.db, env.account_id, credits.parse_amount(amount), env.clock)


async def test_reserve_needs_one_minute_of_credit_and_holds_what_the_call_may_cost(
    env: AuthEnv,
) -> None:
    err = await reserve_refused(env, new_call())
    assert err.code == ErrorCode.ERROR_CODE_INSUFFICIENT_CREDIT
    assert err.reason == (
        f"not enough credit: one minute to {SF} costs 1.20 USD, the balance is 0.00 USD"
    )
    await top_up(env, "1.00")
    err = await reserve_refused(env, new_call())
    assert err.code == ErrorCode.ERROR_CODE_INSUFFICIENT_CREDIT
    assert "costs 1.20 USD, the balance is 1.00 USD" in err.reason

    await top_up(env, "4.00")
    call_id = new_call()
    granted = await reserve(env, call_id)
    # 5.00 at 1.20 a minute pays for 250 s.
    assert (granted.rate_per_minute, granted.reserved, granted.max_seconds, granted.currency) == (
        1_200_000,
        5 * UNIT,
        250,
        "USD",
    )
    # A retry returns the same reservation and holds nothing more.
    assert await reserve(env, call_id) == granted
    err = await reserve_refused(env, call_id, "+14155550199")
    assert err.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT and "another number" in err.reason
    # All of the balance is held by that call now.
    err = await reserve_refused(env, new_call(), "+12125550100")
    assert err.code == ErrorCode.ERROR_CODE_INSUFFICIENT_CREDIT
    assert err.reason == (
        "not enough credit: one minute to +12125550100 costs 0.50 USD, the balance is "
        "5.00 USD (5.00 USD of it held for calls under way)"
    )


async def test_reserve_takes_the_rate_of_the_longest_prefix_and_names_bad_input(
    env: AuthEnv,
) -> None:
    await top_up(env, "1000")
    new_york = await reserve(env, new_call(), "+12125550100")
    assert new_york.rate_per_minute == 500_000
    # Four hours at most (the default longest call): 4 * 60 * 0.50 = 120.00.
    assert (new_york.max_seconds, new_york.reserved) == (4 * 3600, 120 * UNIT)
    err = await reserve_refused(env, new_call(), "+442071234567")
    assert err.code == ErrorCode.ERROR_CODE_NOT_FOUND and err.reason == "no rate for +442071234567"
    # A free destination holds nothing and lasts the longest call.
    await credit_admin.set_rate(env.db, "+1800", 0, "toll free", env.clock)
    free = await reserve(env, new_call(), "+18005550100")
    assert (free.rate_per_minute, free.reserved, free.max_seconds) == (0, 0, 4 * 3600)

    err = await reserve_refused(env, new_call(), "4155550101")
    assert err.code == ErrorCode.ERROR_CODE_INVALID_PHONE_NUMBER and err.field == "number"
    err = await reserve_refused(env, "not-a-call-id")
    assert err.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT and err.field == "call_id"
    err = await reserve_refused(env, new_call(), app_key=str(uuid.uuid4()))
    assert err.code == ErrorCode.ERROR_CODE_UNKNOWN_APPLICATION


async def test_settle_charges_per_second_once_and_writes_the_ledger(env: AuthEnv) -> None:
    await top_up(env, "10.00")
    call_id = new_call()
    granted = await reserve(env, call_id)
    assert (granted.reserved, granted.max_seconds) == (10 * UNIT, 500)
    await touch(env, call_id, 30_000)
    # 61.2 s at 1.20 a minute: 62 s, 1.24.
    settled = await settle(env, call_id, 61_200)
    assert (settled.amount, settled.balance, settled.duration_seconds) == (
        1_240_000,
        8_760_000,
        62,
    )
    # Settling again (a retry, whatever duration it says) charges nothing more.
    assert await settle(env, call_id, 600_000) == settled
    shown = await credit_admin.statement(env.db, env.account_id, 10)
    assert (shown.balance, shown.held) == (8_760_000, 0)
    call, topup = shown.entries
    assert (call.kind, call.amount, call.balance_after) == ("call", -1_240_000, 8_760_000)
    assert (call.number, call.duration_seconds, call.rate_per_minute) == (SF, 62, 1_200_000)
    assert (call.application_key, call.call_id) == (env.app_key, call_id)
    assert (topup.kind, topup.amount, topup.balance_after) == ("topup", 10 * UNIT, 10 * UNIT)
    assert topup.number is None

    # The charge never exceeds what was held: 8.76 pays for 438 s.
    long_call = new_call()
    assert (await reserve(env, long_call)).max_seconds == 438
    capped = await settle(env, long_call, 3_600_000)
    assert (capped.amount, capped.balance, capped.duration_seconds) == (8_760_000, 0, 3600)

    # A settle shorter than what touches reported charges what was touched.
    await top_up(env, "2.00")
    touched = new_call()
    await reserve(env, touched)
    await touch(env, touched, 50_000)
    await touch(env, touched, 20_000)  # known_ms never goes down
    assert (await settle(env, touched, 10_000)).duration_seconds == 50

    err = await env.refused(
        subjects.AUTH_CREDITS_SETTLE,
        settle_request(env, new_call(), 1000),
        credits_pb2.SettleCreditReply,
    )
    assert err.code == ErrorCode.ERROR_CODE_NOT_FOUND and "no credit is reserved" in err.reason
    err = await env.refused(
        subjects.AUTH_CREDITS_TOUCH,
        credits_pb2.TouchCreditRequest(application_key=env.app_key, call_id=new_call()),
        credits_pb2.TouchCreditReply,
    )
    assert err.code == ErrorCode.ERROR_CODE_NOT_FOUND
    err = await env.refused(
        subjects.AUTH_CREDITS_SETTLE,
        settle_request(env, touched, -1),
        credits_pb2.SettleCreditReply,
    )
    assert err.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT and err.field == "duration_ms"


async def test_concurrent_reservations_on_two_replicas_never_overspend(
    nats_server: Any, database_url: str
) -> None:
    # Each call may last a minute at most, so each holds 1.00: 3.00 pays for three calls.
    extra = {"auth_credit_max_call_seconds": 60}
    env = await start_env(nats_server.url, database_url, **extra)
    env.extra_runtimes.append(
        await rt.start(auth_settings(nats_server.url, database_url, **extra), setup, MIGRATIONS)
    )
    try:
        await credit_admin.set_rate(env.db, "+1", UNIT, "", env.clock)
        await top_up(env, "3.00")
        calls = [new_call() for _ in range(20)]
        outcomes = await asyncio.gather(
            *(reserve(env, call_id) for call_id in calls), return_exceptions=True
        )
        granted = [o for o in outcomes if isinstance(o, credits_pb2.ReserveCreditReply)]
        refused = [o for o in outcomes if isinstance(o, ParleyError)]
        assert len(granted) == 3 and len(refused) == 17
        assert {o.code for o in refused} == {ErrorCode.ERROR_CODE_INSUFFICIENT_CREDIT}
        assert {(g.reserved, g.max_seconds) for g in granted} == {(UNIT, 60)}
        # Retries of every call at once change nothing.
        again = await asyncio.gather(
            *(reserve(env, call_id) for call_id in calls), return_exceptions=True
        )
        assert sum(isinstance(o, credits_pb2.ReserveCreditReply) for o in again) == 3
        shown = await credit_admin.statement(env.db, env.account_id, 10)
        assert (shown.balance, shown.held) == (3 * UNIT, 3 * UNIT)
    finally:
        await stop_env(env)


async def test_the_sweeper_settles_an_expired_reservation_for_the_duration_touched(
    env: AuthEnv,
) -> None:
    assert isinstance(env.clock, FakeClock)
    await top_up(env, "2.00")
    call_id = new_call()
    granted = await reserve(env, call_id)
    assert granted.max_seconds == 100  # 2.00 at 1.20 a minute
    # A lease of 90 s (the default), renewed by each touch: a replica that dies releases
    # the credit a lease after its last touch, not after the call's longest length.
    env.clock.advance(60)
    await touch(env, call_id, 45_000)
    env.clock.advance(89)
    await asyncio.sleep(0.3)
    assert (await credit_admin.statement(env.db, env.account_id, 10)).held == 2 * UNIT
    env.clock.advance(2)
    deadline = time.monotonic() + 5
    while (await credit_admin.statement(env.db, env.account_id, 10)).held:
        assert time.monotonic() < deadline, "the sweeper never settled the expired reservation"
        await asyncio.sleep(0.05)
    # Charged for the 45 s touched: 0.90; the sip service's late settle gets that result.
    late = await settle(env, call_id, 90_000)
    assert (late.amount, late.balance, late.duration_seconds) == (900_000, 1_100_000, 45)
    shown = await credit_admin.statement(env.db, env.account_id, 10)
    assert [(e.kind, e.amount, e.duration_seconds) for e in shown.entries] == [
        ("call", -900_000, 45),
        ("topup", 2 * UNIT, None),
    ]


async def test_sweepers_racing_settle_each_reservation_once(env: AuthEnv) -> None:
    await top_up(env, "2000")  # each call holds 4 h at 0.50 a minute: 120.00
    calls = [new_call() for _ in range(12)]
    for index, call_id in enumerate(calls):
        await reserve(env, call_id, "+12125550100")
        await touch(env, call_id, (index + 1) * 1000)
    # Far past every expiry (the service's own sweeper still sees the fake clock's now).
    later = to_datetime(env.clock.time() + 10 * 3600)
    counts = await asyncio.gather(*(sweep_expired(env.db, later) for _ in range(4)))
    assert sum(counts) == 12
    assert await sweep_expired(env.db, later) == 0
    shown = await credit_admin.statement(env.db, env.account_id, 100)
    charges = sorted(-e.amount for e in shown.entries if e.kind == "call")
    # 1..12 s at 0.50 a minute, each rounded up to a micro-unit.
    assert charges == [credits.charge(s * 1000, 500_000) for s in range(1, 13)]
    assert shown.held == 0 and shown.balance == 2000 * UNIT - sum(charges)


async def test_admin_cli_tops_up_sets_rates_and_shows_the_ledger(
    nats_server: Any, database_url: str
) -> None:
    env = await start_env(nats_server.url, database_url)
    cli_env = base_env(database_url)
    try:
        rate = await cli_json("rates-set", "+1415", "1.20", "--description", "SF", env=cli_env)
        assert (rate["prefix"], rate["rate_per_minute"], rate["description"]) == (
            "+1415",
            "1.20",
            "SF",
        )
        await cli_json("rates-set", "+", "2", env=cli_env)
        await cli_json("rates-set", "+1415", "1.2", env=cli_env)  # keeps the description
        listed = await cli_json("rates-list", env=cli_env)
        assert [(r["prefix"], r["rate_per_minute"], r["description"]) for r in listed["rates"]] == [
            ("+", "2.00", ""),
            ("+1415", "1.20", "SF"),
        ]
        code, text, _ = await cli("rates-list", env=cli_env)
        assert code == 0 and "+1415" in text and "1.20/min" in text

        # By application key, then by account id: the same account.
        by_app = await cli_json("credits-topup", env.app_key, "12.50", env=cli_env)
        assert by_app == {
            "account_id": str(env.account_id),
            "amount": "12.50",
            "balance": "12.50",
            "currency": "USD",
            "entry_id": by_app["entry_id"],
        }
        by_account = await cli_json("credits-topup", str(env.account_id), "0.75", env=cli_env)
        assert by_account["balance"] == "13.25"

        call_id = new_call()
        await reserve(env, call_id)
        await settle(env, call_id, 61_200)
        shown = await cli_json("credits-show", env.app_key, "--limit", "2", env=cli_env)
        assert (shown["balance"], shown["held"], shown["available"], shown["currency"]) == (
            "12.01",
            "0.00",
            "12.01",
            "USD",
        )
        call, topup = shown["entries"]
        assert {k: call[k] for k in ("kind", "number", "duration_seconds", "rate_per_minute")} == {
            "kind": "call",
            "number": SF,
            "duration_seconds": 62,
            "rate_per_minute": "1.20",
        }
        assert (call["amount"], call["balance_after"], call["call_id"]) == (
            "-1.24",
            "12.01",
            call_id,
        )
        assert (topup["kind"], topup["amount"]) == ("topup", "0.75")
        code, text, _ = await cli("credits-show", str(env.account_id), env=cli_env)
        assert code == 0 and "balance 12.01 USD" in text
        assert f"{SF}  62 s at 1.20/min" in text and "-1.24" in text and "12.50" in text

        code, _, err = await cli("credits-topup", str(uuid.uuid4()), "1", env=cli_env)
        assert code == 2 and "no account or application has the id" in err
    finally:
        await stop_env(env)


def test_admin_cli_credit_argument_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_DATABASE_URL", "postgresql://127.0.0.1:1/none")
    account = str(uuid.uuid4())
    cases = [
        (["credits-topup", "acme", "1"], "'acme' is not an account id or an application key"),
        (["credits-topup", account, "-1"], "amount '-1' is not a number of units like 12.50"),
        (["credits-topup", account, "0"], "a top-up adds more than 0"),
        (["credits-topup", account, "1.0000001"], "more than 6 decimals"),
        (["credits-show", account, "--limit", "0"], "--limit must be 1 to 10000"),
        (["rates-set", "1415", "1"], "prefix '1415' is not '+' then up to 15 digits"),
        (["rates-set", "+1415", "cheap"], "rate 'cheap' is not a number"),
        (["rates-set", "+1415", "1", "--description", "a\tb"], "control character"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as info:
            admin.main(argv)
        captured = capsys.readouterr()
        assert info.value.code == 2, argv
        assert message in captured.err, (argv, captured.err)
        assert captured.out == ""


async def test_touches_renew_the_lease_but_never_past_what_the_reservation_pays_for(
    env: AuthEnv,
) -> None:
    assert isinstance(env.clock, FakeClock)
    await top_up(env, "2.00")
    call_id = new_call()
    assert (await reserve(env, call_id)).max_seconds == 100
    for _ in range(4):  # touched every 50 s: the lease never runs out ...
        env.clock.advance(50)
        await touch(env, call_id, 1000)
    await asyncio.sleep(0.3)
    assert (await credit_admin.statement(env.db, env.account_id, 10)).held == 2 * UNIT
    # ... but at 100 s paid for plus the grace (120 s) the reservation expires all the same.
    env.clock.advance(21)  # 221 s after the reservation
    deadline = time.monotonic() + 5
    while (await credit_admin.statement(env.db, env.account_id, 10)).held:
        assert time.monotonic() < deadline, "a touched reservation outlived what it pays for"
        await asyncio.sleep(0.05)
