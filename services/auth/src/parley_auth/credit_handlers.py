"""Call credits over the bus (`declare_credit_endpoints`) and the expiry sweeper.

reserve: before dialing a phone number, hold credit for the call (idempotent per call).
touch:   the call is known to have lasted at least this long (sent while it runs).
settle:  the call ended: charge it per second, release the rest, write the ledger entry.

A reservation nobody settles (a sip replica died mid-call) is settled by `sweep_expired`
once its `expires_at` passes, for the duration last touched. A reservation is a lease:
each touch moves `expires_at` to a lease time ahead (never past the time the reservation
pays for, plus the grace), so credit held by a replica that died comes back soon. Every replica may sweep:
each reservation is taken with FOR UPDATE SKIP LOCKED and settled once.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from parley.v1 import credits_pb2
from parley_auth import credits
from parley_auth import credits_store as cstore
from parley_auth.apps import AppDirectory
from parley_auth.keys import to_datetime
from parley_auth.metrics import CREDIT_RESERVATIONS, CREDIT_SETTLED_AMOUNT, CREDIT_SETTLEMENTS
from parley_auth.settings import AuthSettings
from parley_protocol import subjects
from parley_protocol.clock import Clock
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.validation import (
    validate_application_key,
    validate_call_id,
    validate_phone_number,
)
from parley_service.bus import Bus
from parley_service.logs import get_logger

log = get_logger("parley.auth.credits")

MAX_DURATION_MS = 10 * 24 * 3600 * 1000  # ten days: no call lasts longer
# Reservations one sweep settles at most (the next sweep takes the rest).
SWEEP_BATCH = 500


def declare_credit_endpoints(bus: Bus, handlers: CreditHandlers) -> None:
    queue = subjects.AUTH_QUEUE
    bus.endpoint(
        subjects.AUTH_CREDITS_RESERVE, credits_pb2.ReserveCreditRequest, handlers.reserve, queue
    )
    bus.endpoint(subjects.AUTH_CREDITS_TOUCH, credits_pb2.TouchCreditRequest, handlers.touch, queue)
    bus.endpoint(
        subjects.AUTH_CREDITS_SETTLE, credits_pb2.SettleCreditRequest, handlers.settle, queue
    )


def _duration_ms(value: int) -> int:
    if not 0 <= value <= MAX_DURATION_MS:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"duration_ms must be 0 to {MAX_DURATION_MS}, not {value}",
            "duration_ms",
        )
    return value


def _unknown_reservation(application_key: str, call_id: str) -> ParleyError:
    return ParleyError(
        ErrorCode.ERROR_CODE_NOT_FOUND,
        f"no credit is reserved for call {call_id} of application {application_key}",
        "call_id",
    )


def _reserve_reply(r: cstore.Reservation, currency: str) -> credits_pb2.ReserveCreditReply:
    return credits_pb2.ReserveCreditReply(
        rate_per_minute=r.rate, max_seconds=r.max_seconds, reserved=r.reserved, currency=currency
    )


class CreditHandlers:
    def __init__(self, settings: AuthSettings, db: Any, apps: AppDirectory, clock: Clock) -> None:
        self._settings = settings
        self._lease = settings.auth_credit_lease_seconds
        self._db = db
        self._apps = apps
        self._clock = clock

    async def reserve(
        self, req: credits_pb2.ReserveCreditRequest
    ) -> credits_pb2.ReserveCreditReply:
        key = validate_application_key(req.application_key)
        call_id = validate_call_id(req.call_id)
        number = validate_phone_number(req.number, "number")
        app = await self._apps.find(key)
        if app is None:
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNKNOWN_APPLICATION,
                f"no application has the key {key}",
                "application_key",
            )
        async with self._db.acquire() as conn, conn.transaction():
            # One reserve or settle at a time per account: the balance cannot be overspent.
            account = await cstore.lock_credit_account(conn, app.account_id)
            existing = await cstore.get_reservation(conn, key, call_id)
            if existing is not None:
                if existing.number != number:
                    raise ParleyError(
                        ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                        f"call {call_id} has credit reserved for another number",
                        "number",
                    )
                return _reserve_reply(existing, account.currency)
            rates = await cstore.rates_matching(conn, credits.candidate_prefixes(number))
            prefix = credits.longest_prefix(number, rates)
            if prefix is None:
                CREDIT_RESERVATIONS.labels("no_rate").inc()
                raise ParleyError(ErrorCode.ERROR_CODE_NOT_FOUND, f"no rate for {number}", "number")
            rate = rates[prefix]
            held = await cstore.held_by_open_reservations(conn, account.account)
            max_call = self._settings.auth_credit_max_call_seconds
            plan = credits.plan_reservation(account.balance - held, rate, max_call)
            if plan is None:
                CREDIT_RESERVATIONS.labels("insufficient").inc()
                currency = account.currency
                held_text = (
                    f" ({credits.format_amount(held)} {currency} of it held for calls under way)"
                    if held
                    else ""
                )
                raise ParleyError(
                    ErrorCode.ERROR_CODE_INSUFFICIENT_CREDIT,
                    f"not enough credit: one minute to {number} costs "
                    f"{credits.format_amount(rate)} {currency}, the balance is "
                    f"{credits.format_amount(account.balance)} {currency}{held_text}",
                    "number",
                )
            now = to_datetime(self._clock.time())
            grace = self._settings.auth_credit_grace_seconds
            reservation = await cstore.insert_reservation(
                conn,
                key,
                call_id,
                account.account,
                number,
                rate,
                plan.reserved,
                plan.max_seconds,
                now,
                now + timedelta(seconds=min(plan.max_seconds + grace, self._lease)),
            )
        CREDIT_RESERVATIONS.labels("granted").inc()
        log.info(
            "credit_reserved",
            app=key,
            call=call_id,
            prefix=prefix,
            rate=rate,
            reserved=plan.reserved,
            max_seconds=plan.max_seconds,
        )
        return _reserve_reply(reservation, account.currency)

    async def touch(self, req: credits_pb2.TouchCreditRequest) -> credits_pb2.TouchCreditReply:
        key = validate_application_key(req.application_key)
        call_id = validate_call_id(req.call_id)
        duration_ms = _duration_ms(req.duration_ms)
        now = to_datetime(self._clock.time())
        lease_end = now + timedelta(seconds=self._lease)
        grace = self._settings.auth_credit_grace_seconds
        if not await cstore.raise_known_ms(self._db, key, call_id, duration_ms, lease_end, grace):
            raise _unknown_reservation(key, call_id)
        return credits_pb2.TouchCreditReply()

    async def settle(self, req: credits_pb2.SettleCreditRequest) -> credits_pb2.SettleCreditReply:
        key = validate_application_key(req.application_key)
        call_id = validate_call_id(req.call_id)
        duration_ms = _duration_ms(req.duration_ms)
        now = to_datetime(self._clock.time())
        async with self._db.acquire() as conn, conn.transaction():
            reservation = await cstore.get_reservation(conn, key, call_id, lock=True)
            if reservation is None:
                raise _unknown_reservation(key, call_id)
            # Touches said the call lasted at least known_ms.
            reply = await settle_reservation(
                conn, reservation, max(duration_ms, reservation.known_ms), now, "settle"
            )
        return reply


async def settle_reservation(
    conn: Any, r: cstore.Reservation, duration_ms: int, now: datetime, by: str
) -> credits_pb2.SettleCreditReply:
    """Charge a locked reservation for `duration_ms` and write its ledger entry, inside the
    caller's transaction; one settled before answers its first result and charges nothing."""
    if r.settled_at is not None:
        assert r.amount is not None and r.balance_after is not None
        return credits_pb2.SettleCreditReply(
            amount=r.amount, balance=r.balance_after, duration_seconds=r.duration_seconds or 0
        )
    amount = credits.settle_amount(duration_ms, r.rate, r.reserved)
    seconds = credits.billed_seconds(duration_ms)
    await cstore.lock_credit_account(conn, r.account)
    balance = await cstore.add_to_balance(conn, r.account, -amount)
    await cstore.insert_ledger_entry(
        conn,
        r.account,
        now,
        "call",
        -amount,
        balance,
        application_key=r.application_key,
        call_id=r.call_id,
        number=r.number,
        duration_seconds=seconds,
        rate_per_minute=r.rate,
    )
    await cstore.mark_settled(conn, r.application_key, r.call_id, now, by, amount, seconds, balance)
    CREDIT_SETTLEMENTS.labels(by).inc()
    CREDIT_SETTLED_AMOUNT.labels(by).inc(amount)
    log.info(
        "credit_settled",
        app=r.application_key,
        call=r.call_id,
        by=by,
        seconds=seconds,
        amount=amount,
        reserved=r.reserved,
    )
    return credits_pb2.SettleCreditReply(amount=amount, balance=balance, duration_seconds=seconds)


async def sweep_expired(db: Any, now: datetime, limit: int = SWEEP_BATCH) -> int:
    """Settle open reservations past their expiry for the duration last touched; how many.

    One transaction per reservation, so two replicas sweeping never wait on each other's
    account locks in opposite orders (SKIP LOCKED gives each its own reservations).
    """
    settled = 0
    while settled < limit:
        async with db.acquire() as conn, conn.transaction():
            reservation = await cstore.lock_one_expired_reservation(conn, now)
            if reservation is None:
                break
            await settle_reservation(conn, reservation, reservation.known_ms, now, "sweep")
        settled += 1
    return settled


async def run_sweeper(db: Any, clock: Clock, interval: float) -> None:
    """Sweep every `interval` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            swept = await sweep_expired(db, to_datetime(clock.time()))
            if swept:
                log.info("credit_reservations_swept", count=swept)
        except Exception as exc:
            log.warning("credit_sweep_failed", error=str(exc))
