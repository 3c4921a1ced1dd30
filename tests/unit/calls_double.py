"""A minimal calls service for the fake gateway (client_double.py), speaking calls.proto.

It keeps each call's record like the real service (phase, the callee sessions offered it,
the one that answered), relays offers, answers and in-call signals between the two parties'
sessions, and ends calls: on a hang-up (CANCELED, DENIED, HUNG_UP, or the cause a device
names), on another device's answer (OTHER_DEVICE_ANSWERED to the others), or when a test
says so (`end`: NO_ANSWER, TIMEOUT, ...). Tests may have it answer a body with an error
(`errors`), leave a body unanswered (`silent`), or rewrite the descriptions it relays
(`rewrite_sdp`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from google.protobuf.message import Message

from parley_protocol import validation
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.pb import calls as calls_pb
from parley_protocol.pb import client, common

if TYPE_CHECKING:
    from tests.unit.client_double import FakeSession

CALL_BODIES = frozenset(
    {
        "start_call",
        "ring_call",
        "answer_call",
        "hangup_call",
        "send_call_signal",
        "get_ice_servers",
    }
)


@dataclass
class FakeCall:
    call_id: str
    caller: FakeSession
    callee_user_id: str
    video: bool
    headers: dict[str, str]
    offer_sdp: str
    phase: int = calls_pb.CALL_PHASE_INITIATING
    offered: list[FakeSession] = field(default_factory=list)
    answered: FakeSession | None = None
    end_cause: int = calls_pb.CALL_END_CAUSE_UNSPECIFIED
    end_error: common.Error | None = None
    signals: list[tuple[str, calls_pb.CallSignal]] = field(default_factory=list)  # user, signal

    @property
    def ended(self) -> bool:
        return self.phase == calls_pb.CALL_PHASE_ENDED


class FakeCalls:
    """The calls service of a `FakeBackend`. `deliver(session, envelope)` sends an event to a
    device session; `sessions(user_id)` lists a user's live sessions; `registered(user_id)`
    says whether the user ever registered."""

    def __init__(
        self,
        deliver: Callable[[FakeSession, client.Envelope], Awaitable[None]],
        sessions: Callable[[str], list[FakeSession]],
        registered: Callable[[str], bool],
        listening: Callable[[str], set[str]],
    ) -> None:
        self._deliver = deliver
        self._sessions = sessions
        self._registered = registered
        self._listening = listening
        self.calls: dict[str, FakeCall] = {}
        self.errors: dict[str, ParleyError] = {}  # body: the error every such request gets
        self.silent: set[str] = set()  # bodies that get no answer at all
        self.rewrite_sdp: Callable[[str], str] | None = None  # applied to relayed SDPs
        self.ice_servers: list[calls_pb.IceServer] = []
        self.ice_expires_at_ms = 0
        self.requests: list[tuple[str, str, Message]] = []  # user, body, message
        self.event_traceparent = ""  # what CallIncoming frames carry (the service's span)

    def bodies_of(self, user_id: str) -> list[str]:
        return [body for user, body, _ in self.requests if user == user_id]

    def hangups(self) -> list[calls_pb.HangupCall]:
        return [m for _, b, m in self.requests if isinstance(m, calls_pb.HangupCall)]

    async def handle(self, session: FakeSession, body: str, message: Message) -> Message | None:
        """The reply to a request (None: leave it unanswered); ParleyError for an error."""
        assert session.hello is not None
        self.requests.append((session.hello.user_id, body, message))
        if body in self.silent:
            return None
        if body in self.errors:
            raise self.errors[body]
        handler = getattr(self, "_" + body)
        reply: Message = await handler(session, message)
        return reply

    async def end(
        self, call_id: str, cause: int, error: ParleyError | None = None
    ) -> FakeCall | None:
        """End a call as the service does at a deadline (NO_ANSWER, TIMEOUT, ...)."""
        call = self.calls.get(call_id)
        if call is None or call.ended:
            return call
        await self._end(call, cause, error.to_proto() if error else None)
        return call

    # -- requests ------------------------------------------------------------------------------

    async def _start_call(self, session: FakeSession, start: calls_pb.StartCall) -> Message:
        assert session.hello is not None
        validation.validate_call_id(start.call_id)
        validation.validate_user_id(start.callee_user_id, "callee_user_id")
        validation.validate_headers(dict(start.headers))
        validation.validate_sdp(start.offer_sdp, "offer_sdp")
        existing = self.calls.get(start.call_id)
        if existing is not None:
            if existing.caller.hello is None or existing.caller.hello.user_id != (
                session.hello.user_id
            ):
                raise ParleyError(ErrorCode.ERROR_CODE_PERMISSION_DENIED, "not your call")
            return calls_pb.StartCallReply(
                call_id=start.call_id, devices_reached=len(existing.offered)
            )
        if not self._registered(start.callee_user_id):
            raise ParleyError(
                ErrorCode.ERROR_CODE_NOT_FOUND,
                f"user {start.callee_user_id!r} never registered",
                "callee_user_id",
            )
        call = FakeCall(
            start.call_id,
            session,
            start.callee_user_id,
            start.video,
            dict(start.headers),
            start.offer_sdp,
        )
        self.calls[call.call_id] = call
        listening = self._listening(start.callee_user_id)
        call.offered = [
            other
            for other in self._sessions(start.callee_user_id)
            if other is not session
            and other.hello is not None
            and other.hello.capabilities.calling
            and other.session_id in listening
        ]
        incoming = calls_pb.CallIncoming(
            call_id=call.call_id,
            caller_user_id=session.hello.user_id,
            video=call.video,
            headers=call.headers,
            offer_sdp=self._relayed(call.offer_sdp),
            started_at_ms=client_now_ms(),
        )
        for callee in call.offered:
            event = client.Envelope(call_incoming=incoming, traceparent=self.event_traceparent)
            await self._deliver(callee, event)
        return calls_pb.StartCallReply(call_id=call.call_id, devices_reached=len(call.offered))

    async def _ring_call(self, session: FakeSession, ring: calls_pb.RingCall) -> Message:
        call = self._offered_call(session, ring.call_id)
        if call.phase == calls_pb.CALL_PHASE_INITIATING:
            call.phase = calls_pb.CALL_PHASE_RINGING
            progressing = calls_pb.CallProgressing(call_id=call.call_id)
            await self._deliver(call.caller, client.Envelope(call_progressing=progressing))
        return calls_pb.CallAck(call_id=call.call_id, phase=call.phase)

    async def _answer_call(self, session: FakeSession, answer: calls_pb.AnswerCall) -> Message:
        call = self._offered_call(session, answer.call_id)
        validation.validate_sdp(answer.answer_sdp, "answer_sdp")
        if call.ended:
            raise ParleyError(ErrorCode.ERROR_CODE_WRONG_STATE, "the call has ended")
        if call.answered is not None:
            raise ParleyError(ErrorCode.ERROR_CODE_WRONG_STATE, "answered on another device")
        call.phase = calls_pb.CALL_PHASE_ANSWERED
        call.answered = session
        answered = calls_pb.CallAnswered(
            call_id=call.call_id, answer_sdp=self._relayed(answer.answer_sdp)
        )
        await self._deliver(call.caller, client.Envelope(call_answered=answered))
        for other in call.offered:
            if other.session_id != session.session_id:
                ended = calls_pb.CallEnded(
                    call_id=call.call_id,
                    cause=calls_pb.CALL_END_CAUSE_OTHER_DEVICE_ANSWERED,
                    ended_at_ms=client_now_ms(),
                )
                await self._deliver(other, client.Envelope(call_ended=ended))
        return calls_pb.CallAck(call_id=call.call_id, phase=call.phase)

    async def _hangup_call(self, session: FakeSession, hangup: calls_pb.HangupCall) -> Message:
        call = self._party_call(session, hangup.call_id)
        if call.ended:
            return calls_pb.CallAck(call_id=call.call_id, phase=call.phase)
        if hangup.cause:
            cause = hangup.cause
        elif call.answered is not None:
            cause = calls_pb.CALL_END_CAUSE_HUNG_UP
        elif self._is_caller(call, session):
            cause = calls_pb.CALL_END_CAUSE_CANCELED
        else:
            cause = calls_pb.CALL_END_CAUSE_DENIED
        await self._end(call, cause, hangup.error if hangup.HasField("error") else None)
        return calls_pb.CallAck(call_id=call.call_id, phase=call.phase)

    async def _send_call_signal(
        self, session: FakeSession, request: calls_pb.SendCallSignal
    ) -> Message:
        call = self._party_call(session, request.call_id)
        if call.ended or call.answered is None:
            raise ParleyError(ErrorCode.ERROR_CODE_WRONG_STATE, "the call is not answered")
        assert session.hello is not None
        signal = calls_pb.CallSignal()
        signal.CopyFrom(request.signal)
        kind = signal.WhichOneof("kind")
        if kind is None:
            raise ParleyError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "empty signal", "signal")
        if kind == "offer_sdp":
            signal.offer_sdp = self._relayed(validation.validate_sdp(signal.offer_sdp))
        elif kind == "answer_sdp":
            signal.answer_sdp = self._relayed(validation.validate_sdp(signal.answer_sdp))
        elif kind == "dtmf":
            validation.validate_dtmf(signal.dtmf)
        call.signals.append((session.hello.user_id, signal))
        other = call.answered if self._is_caller(call, session) else call.caller
        received = calls_pb.CallSignalReceived(call_id=call.call_id, signal=signal)
        await self._deliver(other, client.Envelope(call_signal_received=received))
        return calls_pb.CallAck(call_id=call.call_id, phase=call.phase)

    async def _get_ice_servers(self, session: FakeSession, _: calls_pb.GetIceServers) -> Message:
        return calls_pb.IceServers(servers=self.ice_servers, expires_at_ms=self.ice_expires_at_ms)

    # -- internals -----------------------------------------------------------------------------

    async def _end(self, call: FakeCall, cause: int, error: common.Error | None) -> None:
        call.phase = calls_pb.CALL_PHASE_ENDED
        call.end_cause = cause
        call.end_error = error
        ended = calls_pb.CallEnded(call_id=call.call_id, cause=cause, ended_at_ms=client_now_ms())
        if error is not None:
            ended.error.CopyFrom(error)
        parties = [call.caller] + ([call.answered] if call.answered else call.offered)
        for party in parties:
            await self._deliver(party, client.Envelope(call_ended=ended))

    def _offered_call(self, session: FakeSession, call_id: str) -> FakeCall:
        call = self.calls.get(call_id)
        if call is None or not _among(session, call.offered):
            raise ParleyError(ErrorCode.ERROR_CODE_NOT_FOUND, f"no call {call_id} offered here")
        return call

    def _party_call(self, session: FakeSession, call_id: str) -> FakeCall:
        """The call, if `session` is a party to it: its user is the caller (on any session:
        a device that reconnected has a new one) or the callee device offered it."""
        call = self.calls.get(call_id)
        if call is None or not (self._is_caller(call, session) or _among(session, call.offered)):
            raise ParleyError(ErrorCode.ERROR_CODE_NOT_FOUND, f"no call {call_id} of yours")
        return call

    @staticmethod
    def _is_caller(call: FakeCall, session: FakeSession) -> bool:
        caller, hello = call.caller.hello, session.hello
        return session is call.caller or (
            caller is not None and hello is not None and caller.user_id == hello.user_id
        )

    def _relayed(self, sdp: str) -> str:
        return self.rewrite_sdp(sdp) if self.rewrite_sdp is not None else sdp


def _among(session: FakeSession, sessions: list[FakeSession]) -> bool:
    """Whether `session` is one of `sessions` (a resumed session keeps its id)."""
    return any(other.session_id == session.session_id for other in sessions)


def client_now_ms() -> int:
    return int(time.time() * 1000)
