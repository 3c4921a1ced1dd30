"""What a leg tells the calls service (LegReport on parley.calls.leg): it rings, answers,
hangs up or signals. Reports are retried while the calls service cannot be reached; a
refusal (the call ended meanwhile) is returned to the leg as the typed error."""

from __future__ import annotations

import asyncio

from parley.v1 import calls_pb2, common_pb2
from parley_protocol import subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.bus import Bus
from parley_service.logs import get_logger

log = get_logger("parley.legs.reports")

REPORT_TIMEOUT_SECONDS = 3.0
REPORT_ATTEMPTS = 4
RETRY_CODES = frozenset({ErrorCode.ERROR_CODE_UNAVAILABLE, ErrorCode.ERROR_CODE_TIMEOUT})


class LegReporter:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def ring(self, app: str, call_id: str) -> calls_pb2.CallAck:
        return await self._send(
            calls_pb2.LegReport(application_key=app, ring=calls_pb2.RingCall(call_id=call_id))
        )

    async def answer(self, app: str, call_id: str, answer_sdp: str) -> calls_pb2.CallAck:
        return await self._send(
            calls_pb2.LegReport(
                application_key=app,
                answer=calls_pb2.AnswerCall(call_id=call_id, answer_sdp=answer_sdp),
            )
        )

    async def hangup(
        self,
        app: str,
        call_id: str,
        error: common_pb2.Error | None = None,
        failure: bool = False,
        cause: calls_pb2.CallEndCause = calls_pb2.CALL_END_CAUSE_UNSPECIFIED,
        session_id: str = "",
    ) -> calls_pb2.CallAck:
        """Hang up: a plain end (DENIED before an answer, HUNG_UP after), a FAILURE, or
        another cause a leg may give (REMOVED); the error (a SIP status, ...) goes to the
        caller either way."""
        hangup = calls_pb2.HangupCall(call_id=call_id, cause=cause)
        if failure:
            hangup.cause = calls_pb2.CALL_END_CAUSE_FAILURE
        if error is not None:
            hangup.error.CopyFrom(error)
        return await self._send(
            calls_pb2.LegReport(application_key=app, hangup=hangup, session_id=session_id)
        )

    async def incoming(self, app: str, incoming: calls_pb2.LegIncoming) -> calls_pb2.CallAck:
        return await self._send(calls_pb2.LegReport(application_key=app, incoming=incoming))

    async def start(self, app: str, start: calls_pb2.StartCall) -> calls_pb2.CallAck:
        """Call a phone or a SIP address as a leg (session LEG_CALLER_SESSION)."""
        return await self._send(
            calls_pb2.LegReport(
                application_key=app, start=start, session_id=subjects.LEG_CALLER_SESSION
            )
        )

    async def dtmf(self, app: str, call_id: str, digits: str) -> calls_pb2.CallAck:
        return await self._send(
            calls_pb2.LegReport(
                application_key=app,
                signal=calls_pb2.SendCallSignal(
                    call_id=call_id, signal=calls_pb2.CallSignal(dtmf=digits)
                ),
            )
        )

    async def _send(self, report: calls_pb2.LegReport) -> calls_pb2.CallAck:
        delay = 0.2
        for attempt in range(1, REPORT_ATTEMPTS + 1):
            try:
                return await self._bus.request(
                    subjects.CALLS_LEG_REPORTS, report, calls_pb2.CallAck, REPORT_TIMEOUT_SECONDS
                )
            except ParleyError as exc:
                if exc.code not in RETRY_CODES or attempt == REPORT_ATTEMPTS:
                    raise
                log.warning(
                    "leg_report_retry",
                    report=report.WhichOneof("report"),
                    attempt=attempt,
                    error=exc.reason,
                )
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")
