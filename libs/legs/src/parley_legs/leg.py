"""A remote leg: the far side of one phone or SIP call, held by this replica.

A leg answers the client's WebRTC offer, hears the call's events (LegEvent on its subject:
the caller hung up, DTMF), reports ringing, answering and hanging up to the calls service,
and ends once: `end()` runs its subclass's teardown, closes the WebRTC leg and stops
listening. Subclasses (the SIP bridge, the test number) say what happens in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter, Gauge

from parley.v1 import calls_pb2, common_pb2
from parley_legs.reports import LegReporter
from parley_legs.webrtc import WebRtcLeg
from parley_protocol import subjects
from parley_protocol.errors import ParleyError
from parley_service import tracing
from parley_service.logs import get_logger

log = get_logger("parley.legs")


@dataclass(frozen=True)
class LegMetrics:
    """A service's leg metrics: legs live by kind, legs ended by kind and outcome."""

    live: Gauge
    ended: Counter


class Peer(Protocol):
    """The client's side of a leg's media: a WebRTC peer connection."""

    async def answer(self, offer_sdp: str) -> str: ...

    async def offer(self) -> str: ...

    async def accept_answer(self, answer_sdp: str) -> None: ...

    async def close(self) -> None: ...


P = TypeVar("P", bound=Peer)


class Leg(Generic[P]):
    """One call's far side. `start()` answers the offer and returns the WebRTC answer;
    `run()` (a task of the service's) does the call; `done` is set once it ended. The peer
    connection (`webrtc`) is the subclass's choice (`make_peer`)."""

    kind = "leg"
    # The session the leg stands under in its call: the far side (or a leg that called in),
    # or a leg that started a call to another remote leg (subjects.LEG_CALLER_SESSION).
    session = subjects.LEG_SESSION
    # Each service's legs count in its own metrics.
    metrics: ClassVar[LegMetrics | None] = None

    def __init__(self, nc: NATS, reporter: LegReporter, record: calls_pb2.CallRecord) -> None:
        self.record = record
        self.app = record.application_key
        self.call_id = record.call_id
        self._nc = nc
        self._reporter = reporter
        self.webrtc: P = self.make_peer()
        self.answer_sdp = ""
        self.answered_at = 0.0
        # Set when the calls service said the call ended (the caller hung up, or it expired).
        self.caller_gone = asyncio.Event()
        # Set when the client's media failed or closed.
        self.media_gone = asyncio.Event()
        # A leg that called in (a phone calling a user): a device rings, a device answered.
        self.callee_ringing = asyncio.Event()
        self.callee_answered = asyncio.Event()
        self.callee_answer_sdp = ""
        # How the calls service said the call ended (with caller_gone).
        self.end_cause: int = calls_pb2.CALL_END_CAUSE_UNSPECIFIED
        self.done = asyncio.Event()
        self._sub: Subscription | None = None
        self._ended = False

    @property
    def key(self) -> str:
        return subjects.call_key(self.app, self.call_id)

    async def start(self) -> None:
        """Listen for the call's events, then make the WebRTC answer (or offer)."""
        self._sub = await self._nc.subscribe(
            subjects.call_leg(self.app, self.call_id, self.session), cb=self._leg_event
        )
        if self.metrics is not None:
            self.metrics.live.labels(self.kind).inc()
        await self.prepare()

    async def prepare(self) -> None:
        """The client called: answer its offer."""
        self.answer_sdp = await self.webrtc.answer(self.record.offer_sdp)

    async def run(self) -> None:
        raise NotImplementedError

    def make_peer(self) -> P:
        raise NotImplementedError

    # -- what subclasses use --------------------------------------------------------------

    def dtmf_from_client(self, digits: str) -> None:
        """DTMF digits the caller sent (call.send_dtmf)."""

    async def report_ring(self) -> bool:
        return await self._report(self._reporter.ring(self.app, self.call_id), "ring")

    def mark_answered(self) -> None:
        """The call is answered: its talk time counts from now."""
        self.answered_at = time.monotonic()

    async def report_answer(self) -> bool:
        self.mark_answered()
        return await self._report(
            self._reporter.answer(self.app, self.call_id, self.answer_sdp), "answer"
        )

    async def report_dtmf(self, digits: str) -> None:
        await self._report(self._reporter.dtmf(self.app, self.call_id, digits), "dtmf")

    async def end(
        self,
        outcome: str,
        error: common_pb2.Error | None = None,
        failure: bool = False,
        cause: calls_pb2.CallEndCause = calls_pb2.CALL_END_CAUSE_UNSPECIFIED,
    ) -> None:
        """End the leg once: tell the calls service (unless it told us), tear down."""
        if self._ended:
            return
        self._ended = True
        if not self.caller_gone.is_set():
            await self._report(
                self._reporter.hangup(self.app, self.call_id, error, failure, cause, self.session),
                "hangup",
            )
        with contextlib.suppress(Exception):
            await self.teardown()
        await self.webrtc.close()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if self.metrics is not None:
            self.metrics.live.labels(self.kind).dec()
            self.metrics.ended.labels(self.kind, outcome).inc()
        log.info("leg_ended", app=self.app, call=self.call_id, kind=self.kind, outcome=outcome)
        self.done.set()

    async def teardown(self) -> None:
        """The subclass's own resources (the SIP call)."""

    @property
    def talk_seconds(self) -> float:
        return time.monotonic() - self.answered_at if self.answered_at else 0.0

    async def wait_any(self, *events: asyncio.Event, timeout: float | None = None) -> None:
        """Until one of `events` is set (or the timeout)."""
        waits = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    # -- internals ------------------------------------------------------------------------

    async def _report(self, sending: Awaitable[calls_pb2.CallAck], what: str) -> bool:
        try:
            await sending
        except ParleyError as exc:
            log.warning("leg_report_refused", call=self.call_id, report=what, error=exc.reason)
            self.caller_gone.set()  # the call is over as far as the calls service knows
            return False
        return True

    async def _leg_event(self, msg: Msg) -> None:
        try:
            event = calls_pb2.LegEvent.FromString(msg.data)
        except Exception:
            log.warning("leg_event_undecodable", call=self.call_id)
            return
        which = event.WhichOneof("event")
        with tracing.consumer_span("parley.legs", f"leg event {which}", msg.headers):
            self._heard(event, which)

    def _heard(self, event: calls_pb2.LegEvent, which: str | None) -> None:
        if which == "call_ended":
            self.end_cause = event.call_ended.cause
            self.caller_gone.set()
        elif which == "call_progressing":
            self.callee_ringing.set()
        elif which == "call_answered":
            self.callee_answer_sdp = event.call_answered.answer_sdp
            self.callee_answered.set()
        elif which == "call_signal_received":
            signal = event.call_signal_received.signal
            if signal.WhichOneof("kind") == "dtmf":
                self.dtmf_from_client(signal.dtmf)

    def _webrtc_state(self, state: str) -> None:
        if state in ("failed", "closed"):
            self.media_gone.set()


class AudioLeg(Leg[WebRtcLeg]):
    """A leg whose client media is PCM both ways (`WebRtcLeg`): the client's audio comes to
    `client_audio`, and `webrtc.send` sends it audio."""

    def make_peer(self) -> WebRtcLeg:
        return WebRtcLeg(self.client_audio, self._webrtc_state)

    def client_audio(self, pcm: bytes) -> None:
        """20 ms of the client's audio (48 kHz mono PCM)."""
