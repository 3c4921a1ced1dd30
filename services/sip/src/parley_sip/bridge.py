"""A call to a phone (through the trunk) or to a SIP address: a SIP leg placed through the
engine, its audio bridged both ways to the client's WebRTC leg.

SIP progress (180/183) reports ringing, the answer (200 OK) reports the WebRTC answer; the
far end's BYE or an error response ends the call (486 and 603 as DENIED, other errors as a
FAILURE with the SIP status), the caller's hang-up sends CANCEL or BYE. A call that is paid
for is cut when its reserved credit runs out, and settled at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from nats.aio.client import Client as NATS

from parley.v1 import calls_pb2, common_pb2
from parley_protocol.errors import ErrorCode
from parley_service.logs import get_logger
from parley_sip.credits import Credits, Reservation
from parley_sip.engine import Credentials, SipEnd, SipEngine, SipLeg
from parley_sip.legs import Leg
from parley_sip.metrics import SIP_RESPONSES
from parley_sip.reports import LegReporter

log = get_logger("parley.sip.bridge")

# Statuses that mean the far end declined the call.
DECLINED = frozenset({486, 600, 603})


def sip_error(end: SipEnd) -> common_pb2.Error:
    reason = f"{end.code} {end.reason}".strip()
    return common_pb2.Error(code=ErrorCode.ERROR_CODE_SIP, reason=reason, sip_status=end.code)


class SipBridge(Leg):
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
        self._sip: SipLeg | None = None
        self._pump: asyncio.Task[None] | None = None
        self._touch: asyncio.Task[None] | None = None

    async def run(self) -> None:
        if self._reservation is not None and self._credits is not None:
            # The reservation is a lease: renewed while the call rings and while it talks.
            self._touch = asyncio.get_running_loop().create_task(self._touching())
        try:
            self._sip = await self._engine.dial(
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
        sip = self._sip
        sip.on_dtmf(lambda digit: self._spawn_dtmf(digit))
        ended = asyncio.ensure_future(sip.wait_ended())
        try:
            await self._until_answered(sip, ended)
            if ended.done() or self.caller_gone.is_set() or self.media_gone.is_set():
                await self._finish(sip, ended)
                return
            self._pump = asyncio.get_running_loop().create_task(self._phone_to_client(sip))
            limit = self._reservation.max_seconds if self._reservation is not None else None
            await self.wait_any(
                _done_event(ended), self.caller_gone, self.media_gone, timeout=limit
            )
            if not (ended.done() or self.caller_gone.is_set() or self.media_gone.is_set()):
                await sip.hangup()
                await self.end(
                    "credit_exhausted",
                    common_pb2.Error(
                        code=ErrorCode.ERROR_CODE_INSUFFICIENT_CREDIT,
                        reason="the call was cut: its reserved credit ran out",
                    ),
                    failure=True,
                )
                return
            await self._finish(sip, ended)
        finally:
            ended.cancel()

    async def _until_answered(self, sip: SipLeg, ended: asyncio.Future[SipEnd]) -> None:
        """Report ringing on 180/183 and the answer on 200 OK (or stop at an end)."""
        gone = (_done_event(ended), self.caller_gone, self.media_gone)
        await self.wait_any(sip.progressing, sip.answered, *gone)
        if sip.progressing.is_set() and not sip.answered.is_set():
            await self.report_ring()
            await self.wait_any(sip.answered, *gone)
        if sip.answered.is_set() and not ended.done():
            await self.report_answer()

    async def _finish(self, sip: SipLeg, ended: asyncio.Future[SipEnd]) -> None:
        if ended.done() and not ended.cancelled():
            end = ended.result()
            SIP_RESPONSES.labels(f"{end.code // 100}xx").inc()
            if not self.answered_at:
                if end.code in DECLINED:
                    await self.end("denied", sip_error(end))
                else:
                    await self.end("sip_error", sip_error(end), failure=True)
                return
            await self.end("hung_up")
            return
        await sip.hangup()
        if self.caller_gone.is_set():
            await self.end("caller_hung_up")
        else:
            error = common_pb2.Error(
                code=ErrorCode.ERROR_CODE_UNAVAILABLE,
                reason="the media between the client and the SIP gateway failed",
            )
            await self.end("media_failed", error, failure=True)

    async def teardown(self) -> None:
        for task in (self._pump, self._touch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._sip is not None:
            await self._sip.hangup()
        if self._reservation is not None and self._credits is not None:
            await self._credits.settle(self.app, self.call_id, self.talk_seconds)

    # -- audio and DTMF -------------------------------------------------------------------

    def client_audio(self, pcm: bytes) -> None:
        if self._sip is not None and self.answered_at:
            self._sip.write_audio(pcm)

    async def _phone_to_client(self, sip: SipLeg) -> None:
        with contextlib.suppress(EOFError):
            while True:
                self.webrtc.send(await sip.read_audio())

    def dtmf_from_client(self, digits: str) -> None:
        if self._sip is not None:
            asyncio.get_running_loop().create_task(self._sip.send_dtmf(digits))

    def _spawn_dtmf(self, digit: str) -> None:
        asyncio.get_running_loop().create_task(self.report_dtmf(digit))

    async def _touching(self) -> None:
        assert self._credits is not None
        while True:
            await asyncio.sleep(self._touch_seconds)
            await self._credits.touch(self.app, self.call_id, self.talk_seconds)


def _done_event(future: asyncio.Future[SipEnd]) -> asyncio.Event:
    event = asyncio.Event()
    future.add_done_callback(lambda _: event.set())
    return event
