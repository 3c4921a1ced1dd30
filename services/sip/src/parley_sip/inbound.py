"""Calls from phones: an INVITE from the trunk to a number mapped to an application user
rings that user's devices (a call of kind PHONE from the calling number).

The leg is the call's caller here: it makes the WebRTC offer, reports the call in
(LegIncoming), sends 180 when a device rings, and answers the INVITE (200 OK) with the
device's WebRTC answer once one answers; then the call is bridged as any other. A call no
device takes is refused: 603 when declined, 480 when nobody answered in time.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS

from parley.v1 import calls_pb2
from parley_legs.reports import LegReporter
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.logs import get_logger
from parley_sip.bridge import MEDIA_FAILED, Bridged, done_event, released
from parley_sip.engine import IncomingInvite, SipEnd

log = get_logger("parley.sip.inbound")

# The final response to a call no device answered, by how it ended.
REJECT_CODES: dict[int, int] = {
    calls_pb2.CALL_END_CAUSE_DENIED: 603,
    calls_pb2.CALL_END_CAUSE_NO_ANSWER: 480,
    calls_pb2.CALL_END_CAUSE_TIMEOUT: 480,
}


class InboundBridge(Bridged):
    kind = "inbound"

    def __init__(
        self,
        nc: NATS,
        reporter: LegReporter,
        record: calls_pb2.CallRecord,
        invite: IncomingInvite,
    ) -> None:
        super().__init__(nc, reporter, record)
        self._invite = invite
        self.offer_sdp = ""

    async def prepare(self) -> None:
        self.offer_sdp = await self.webrtc.offer()

    async def teardown(self) -> None:
        await super().teardown()
        if self.sip is None:  # refused or canceled before the answer
            await released(self._invite.leg)

    async def run(self) -> None:
        invite = self._invite
        phone_gone = invite.leg.ended
        incoming = calls_pb2.LegIncoming(
            call_id=self.call_id,
            callee_user_id=self.record.callee_user_id,
            from_number=self.record.destination,
            headers=self.record.headers,
            offer_sdp=self.offer_sdp,
        )
        try:
            await self._reporter.incoming(self.app, incoming)
        except ParleyError as exc:
            log.info("inbound_refused", call=self.call_id, error=exc.reason)
            await invite.reject(404 if exc.code == ErrorCode.ERROR_CODE_NOT_FOUND else 503)
            self.caller_gone.set()  # nothing to tell the calls service
            await self.end("refused")
            return
        ringing = False
        gone = (done_event(phone_gone), self.caller_gone)
        while not self.callee_answered.is_set():
            await self.wait_any(self.callee_ringing, self.callee_answered, *gone)
            if phone_gone.done() or self.caller_gone.is_set():
                break
            if self.callee_ringing.is_set() and not ringing:
                ringing = True
                await invite.ring()
        if phone_gone.done():
            await self.end("canceled")  # the phone hung up first: CANCELED to the devices
            return
        if self.caller_gone.is_set():
            await invite.reject(REJECT_CODES.get(self.end_cause, 487))
            await self.end("not_answered")
            return
        try:
            await self.webrtc.accept_answer(self.callee_answer_sdp)
        except ParleyError as exc:
            log.warning("inbound_answer_unusable", call=self.call_id, error=exc.reason)
            await invite.reject(488)
            await self.end("media_failed", MEDIA_FAILED, failure=True)
            return
        self.sip = await invite.answer()
        self.sip.on_dtmf(self.dtmf_from_phone)
        self.mark_answered()
        ended: asyncio.Future[SipEnd] = asyncio.ensure_future(self.sip.wait_ended())
        try:
            await self.talk(self.sip, ended, None)
        finally:
            ended.cancel()
