"""Calls whose far side is a SIP call, bridged to the client's WebRTC leg.

`Bridged` is what every such call does once the SIP call is up: audio both ways (the SIP
leg's 48 kHz frames to the client's track, the client's frames to the SIP leg), DTMF both
ways (RFC 4733 on the SIP side, call signals on the client's), and the end: the far end's
BYE, the caller's hang-up, the client's media failing, or the paid-for time running out.

`SipBridge` places the SIP call (to the trunk for a phone number, or to a SIP address):
180/183 report ringing, the 200 OK the WebRTC answer; an error response ends the call
(486, 600 and 603 as DENIED, others as a FAILURE with the SIP status). A call that is paid
for keeps its reservation alive while it rings and talks, and is settled at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from nats.aio.client import Client as NATS

from parley.v1 import calls_pb2, common_pb2
from parley_legs.leg import AudioLeg
from parley_legs.reports import LegReporter
from parley_protocol.errors import ErrorCode
from parley_service.logs import get_logger
from parley_sip.credits import Credits, Reservation
from parley_sip.engine import Credentials, SipEnd, SipEngine, SipLeg
from parley_sip.metrics import LEG_METRICS, SIP_RESPONSES

log = get_logger("parley.sip.bridge")

# Statuses that mean the far end declined the call.
DECLINED = frozenset({486, 600, 603})

MEDIA_FAILED = common_pb2.Error(
    code=ErrorCode.ERROR_CODE_UNAVAILABLE,
    reason="the media between the client and the SIP gateway failed",
)
CREDIT_RAN_OUT = common_pb2.Error(
    code=ErrorCode.ERROR_CODE_INSUFFICIENT_CREDIT,
    reason="the call was cut: its reserved credit ran out",
)


def sip_error(end: SipEnd) -> common_pb2.Error:
    reason = f"{end.code} {end.reason}".strip()
    return common_pb2.Error(code=ErrorCode.ERROR_CODE_SIP, reason=reason, sip_status=end.code)


# How long a leg waits, when it ends, for its SIP call to be over (a BYE or CANCEL answered):
# until then the call holds one of the SIP stack's call slots.
RELEASE_TIMEOUT_SECONDS = 5.0


async def released(sip: SipLeg) -> None:
    """Until the SIP call is over, so that its slot is free for the next call."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(sip.ended), RELEASE_TIMEOUT_SECONDS)


def done_event(future: asyncio.Future[SipEnd]) -> asyncio.Event:
    event = asyncio.Event()
    future.add_done_callback(lambda _: event.set())
    return event


class Bridged(AudioLeg):
    """A leg whose far side is a SIP call (`self.sip` once there is one)."""

    metrics = LEG_METRICS
    sip: SipLeg | None = None
    _pump: asyncio.Task[None] | None = None

    async def talk(self, sip: SipLeg, ended: asyncio.Future[SipEnd], limit: float | None) -> None:
        """Bridge an answered SIP call until it ends one way or another, then end the leg."""
        self._pump = asyncio.get_running_loop().create_task(self._phone_to_client(sip))
        await self.wait_any(done_event(ended), self.caller_gone, self.media_gone, timeout=limit)
        if ended.done():
            SIP_RESPONSES.labels(f"{ended.result().code // 100}xx").inc()
            await self.end("hung_up")
            return
        await sip.hangup()
        if self.caller_gone.is_set():
            await self.end("caller_hung_up")
        elif self.media_gone.is_set():
            await self.end("media_failed", MEDIA_FAILED, failure=True)
        else:
            await self.end("credit_exhausted", CREDIT_RAN_OUT, failure=True)

    async def teardown(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        if self.sip is not None:
            await self.sip.hangup()
            await released(self.sip)

    def client_audio(self, pcm: bytes) -> None:
        if self.sip is not None and self.sip.answered.is_set():
            self.sip.write_audio(pcm)

    async def _phone_to_client(self, sip: SipLeg) -> None:
        with contextlib.suppress(EOFError):
            while True:
                self.webrtc.send(await sip.read_audio())

    def dtmf_from_client(self, digits: str) -> None:
        if self.sip is not None:
            asyncio.get_running_loop().create_task(self.sip.send_dtmf(digits))

    def dtmf_from_phone(self, digit: str) -> None:
        asyncio.get_running_loop().create_task(self.report_dtmf(digit))


class SipBridge(Bridged):
    kind = "sip"

    def __init__(
        self,
        nc: NATS,
        reporter: LegReporter,
        record: calls_pb2.CallRecord,
        engine: SipEngine,
        uri: str,
        headers: Mapping[str, str],
        caller_id: str | None,
        credentials: Credentials | None,
        credits: Credits | None = None,
        reservation: Reservation | None = None,
        touch_seconds: float = 10.0,
    ) -> None:
        super().__init__(nc, reporter, record)
        self._engine = engine
        self._uri = uri
        self._headers = dict(headers)
        self._caller_id = caller_id
        self._credentials = credentials
        self._credits = credits
        self._reservation = reservation
        self._touch_seconds = touch_seconds
        self._touch: asyncio.Task[None] | None = None

    async def run(self) -> None:
        if self._reservation is not None and self._credits is not None:
            # The reservation is a lease: renewed while the call rings and while it talks.
            self._touch = asyncio.get_running_loop().create_task(self._touching())
        try:
            self.sip = await self._engine.dial(
                self._uri,
                headers=self._headers,
                caller_id=self._caller_id,
                credentials=self._credentials,
            )
        except Exception as exc:
            log.warning("sip_dial_failed", call=self.call_id, uri=self._uri, error=str(exc))
            error = common_pb2.Error(
                code=ErrorCode.ERROR_CODE_UNAVAILABLE, reason=f"the SIP call failed: {exc}"
            )
            await self.end("failed", error, failure=True)
            return
        sip = self.sip
        sip.on_dtmf(self.dtmf_from_phone)
        ended = asyncio.ensure_future(sip.wait_ended())
        try:
            await self._until_answered(sip, ended)
            if ended.done() and not self.answered_at:
                await self._refused(ended.result())
            elif self.caller_gone.is_set() or self.media_gone.is_set() or not self.answered_at:
                await sip.hangup()
                gone = self.caller_gone.is_set()
                await self.end(
                    "caller_hung_up" if gone else "media_failed",
                    None if gone else MEDIA_FAILED,
                    failure=not gone,
                )
            else:
                limit = self._reservation.max_seconds if self._reservation else None
                await self.talk(sip, ended, limit)
        finally:
            ended.cancel()

    async def _until_answered(self, sip: SipLeg, ended: asyncio.Future[SipEnd]) -> None:
        """Report ringing on 180/183 and the answer on 200 OK (or stop at an end)."""
        gone = (done_event(ended), self.caller_gone, self.media_gone)
        await self.wait_any(sip.progressing, sip.answered, *gone)
        if sip.progressing.is_set() and not sip.answered.is_set():
            await self.report_ring()
            await self.wait_any(sip.answered, *gone)
        if sip.answered.is_set() and not ended.done():
            await self.report_answer()

    async def _refused(self, end: SipEnd) -> None:
        SIP_RESPONSES.labels(f"{end.code // 100}xx").inc()
        if end.code in DECLINED:
            await self.end("denied", sip_error(end))
        else:
            await self.end("sip_error", sip_error(end), failure=True)

    async def teardown(self) -> None:
        if self._touch is not None:
            self._touch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._touch
        await super().teardown()
        if self._reservation is not None and self._credits is not None:
            await self._credits.settle(self.app, self.call_id, self.talk_seconds)

    async def _touching(self) -> None:
        assert self._credits is not None
        while True:
            await asyncio.sleep(self._touch_seconds)
            await self._credits.touch(self.app, self.call_id, self.talk_seconds)
