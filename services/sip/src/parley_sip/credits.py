"""Credit for calls to phones, kept by auth (the account's balance and ledger): reserve before
dialling (refused INSUFFICIENT_CREDIT when one minute cannot be paid), tell how long a call
has lasted while it runs, settle per second at its end. Each request is idempotent on the
call id, so a retry neither reserves nor charges twice."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from parley.v1 import credits_pb2
from parley_protocol import subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.bus import Bus
from parley_service.logs import get_logger

log = get_logger("parley.sip.credits")

REQUEST_TIMEOUT_SECONDS = 3.0
SETTLE_ATTEMPTS = 5
RETRY_CODES = frozenset({ErrorCode.ERROR_CODE_UNAVAILABLE, ErrorCode.ERROR_CODE_TIMEOUT})


@dataclass(frozen=True)
class Reservation:
    rate_per_minute: int  # micro-units of the account's currency
    max_seconds: int  # the call is cut after this long


class Credits:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def reserve(self, app: str, call_id: str, number: str) -> Reservation:
        reply = await self._bus.request(
            subjects.AUTH_CREDITS_RESERVE,
            credits_pb2.ReserveCreditRequest(application_key=app, call_id=call_id, number=number),
            credits_pb2.ReserveCreditReply,
            REQUEST_TIMEOUT_SECONDS,
        )
        return Reservation(reply.rate_per_minute, reply.max_seconds)

    async def touch(self, app: str, call_id: str, seconds: float) -> None:
        try:
            await self._bus.request(
                subjects.AUTH_CREDITS_TOUCH,
                credits_pb2.TouchCreditRequest(
                    application_key=app, call_id=call_id, duration_ms=int(seconds * 1000)
                ),
                credits_pb2.TouchCreditReply,
                REQUEST_TIMEOUT_SECONDS,
            )
        except ParleyError as exc:
            log.warning("credit_touch_failed", call=call_id, error=exc.reason)

    async def settle(self, app: str, call_id: str, seconds: float) -> None:
        """Charge the call for `seconds` of talk; retried while auth cannot be reached (a
        reservation never settled is settled by auth's sweeper for the time last touched)."""
        request = credits_pb2.SettleCreditRequest(
            application_key=app, call_id=call_id, duration_ms=math.ceil(seconds * 1000)
        )
        delay = 0.2
        for attempt in range(1, SETTLE_ATTEMPTS + 1):
            try:
                reply = await self._bus.request(
                    subjects.AUTH_CREDITS_SETTLE,
                    request,
                    credits_pb2.SettleCreditReply,
                    REQUEST_TIMEOUT_SECONDS,
                )
            except ParleyError as exc:
                if exc.code not in RETRY_CODES or attempt == SETTLE_ATTEMPTS:
                    log.warning("credit_settle_failed", call=call_id, error=exc.reason)
                    return
                await asyncio.sleep(delay)
                delay *= 2
                continue
            log.info(
                "credit_settled",
                app=app,
                call=call_id,
                seconds=reply.duration_seconds,
                amount=reply.amount,
            )
            return
