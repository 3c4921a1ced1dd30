"""The calls service's client requests, each a routed body answered for a verified caller.

start_call:       offer a call to the callee's devices that take calls now (CallIncoming)
ring_call:        a callee device rings (the caller hears CallProgressing, once)
answer_call:      the first answer wins (CallAnswered to the caller, CallEnded
                  OTHER_DEVICE_ANSWERED to the other devices)
hangup_call:      cancel, decline or end a call (CallEnded to whom it concerns)
send_call_signal: relay a signal to the other party of an answered call
get_ice_servers:  STUN and TURN servers, TURN with short-lived credentials
claim_call:       a callee device woken by push asks for a call still waiting (CallIncoming
                  to it)
leg_report:       the remote leg of a phone or SIP call (held by the sip service) rings,
                  answers, hangs up or signals, as a callee device would

A call that reaches no callee device is handed to the push service (Notify): it pushes to
the callee's devices with managed push, and the StartCall reply carries the push pairs of the
others for the caller's app (app-server push).

Identity comes from the Caller only. Every change is a compare-and-set of the call's record
(see store.py); only the request whose write lands sends the events of that change.
"""

from __future__ import annotations

import asyncio

from parley.v1 import auth_pb2, calls_pb2, common_pb2, push_pb2
from parley_calls import records
from parley_calls.events import CallEvents
from parley_calls.metrics import CALLS_STARTED, SETUP_SECONDS
from parley_calls.settings import CallsSettings
from parley_calls.store import CallStore
from parley_calls.turn import IceConfig
from parley_protocol import subjects
from parley_protocol.clock import Clock, now_ms
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.validation import (
    validate_call_id,
    validate_conference_id,
    validate_dtmf,
    validate_headers,
    validate_phone_number,
    validate_sdp,
    validate_sip_headers,
    validate_sip_identity,
    validate_user_id,
)
from parley_service.app_label import app_label
from parley_service.bus import Bus, Unreachable
from parley_service.client_requests import Caller
from parley_service.logs import get_logger
from parley_service.presence import PresenceReader

log = get_logger("parley.calls.handlers")

# How long StartCall waits for auth to say whether the callee ever registered.
USER_LOOKUP_TIMEOUT_SECONDS = 2.0
# How long StartCall waits for the push service when no callee device was reached.
NOTIFY_TIMEOUT_SECONDS = 2.0
# How long StartCall waits for the service that holds remote legs to take a call, and how
# often it offers it again when a replica was full.
DIAL_TIMEOUT_SECONDS = 3.0
DIAL_ATTEMPTS = 3
DIAL_RETRY_SECONDS = 0.1


def declare_endpoints(bus: Bus, handlers: CallHandlers) -> None:
    bus.client_endpoint(calls_pb2.StartCall, handlers.start_call)
    bus.client_endpoint(calls_pb2.RingCall, handlers.ring_call)
    bus.client_endpoint(calls_pb2.AnswerCall, handlers.answer_call)
    bus.client_endpoint(calls_pb2.HangupCall, handlers.hangup_call)
    bus.client_endpoint(calls_pb2.SendCallSignal, handlers.send_call_signal)
    bus.client_endpoint(calls_pb2.GetIceServers, handlers.get_ice_servers)
    bus.client_endpoint(calls_pb2.ClaimCall, handlers.claim_call)
    bus.endpoint(
        subjects.CALLS_LEG_REPORTS, calls_pb2.LegReport, handlers.leg_report, subjects.CALLS_QUEUE
    )


def _ack(record: calls_pb2.CallRecord) -> calls_pb2.CallAck:
    return calls_pb2.CallAck(call_id=record.call_id, phase=record.phase)


class CallHandlers:
    def __init__(
        self,
        settings: CallsSettings,
        store: CallStore,
        presence: PresenceReader,
        events: CallEvents,
        bus: Bus,
        clock: Clock,
    ) -> None:
        self._store = store
        self._presence = presence
        self._events = events
        self._bus = bus
        self._clock = clock
        self._ice = IceConfig.from_settings(settings)
        self._setup_ms = int(settings.call_setup_timeout_seconds * 1000)
        self._ringing_ms = int(settings.call_ringing_timeout_seconds * 1000)

    def _now_ms(self) -> int:
        return now_ms(self._clock)

    # start ----------------------------------------------------------------------------

    async def start_call(
        self, caller: Caller, request: calls_pb2.StartCall
    ) -> calls_pb2.StartCallReply:
        app = caller.application_key
        call_id = validate_call_id(request.call_id)
        kind, destination = _destination(caller, request)
        offer_sdp = validate_sdp(request.offer_sdp, "offer_sdp")
        existing = await self._store.get(app, call_id)
        if existing is not None:
            return self._started_before(caller, existing.record)
        if kind == records.APP:
            return await self._start_app_call(caller, request, destination, offer_sdp)
        return await self._start_remote_call(caller, request, kind, destination, offer_sdp)

    async def _start_app_call(
        self, caller: Caller, request: calls_pb2.StartCall, callee: str, offer_sdp: str
    ) -> calls_pb2.StartCallReply:
        headers = validate_headers(dict(request.headers))
        return await self._offer_to_devices(
            caller, request.call_id, callee, headers, offer_sdp, request.video
        )

    async def _offer_to_devices(
        self,
        caller: Caller,
        call_id: str,
        callee: str,
        headers: dict[str, str],
        offer_sdp: str,
        video: bool,
        from_number: str = "",
        kind: calls_pb2.CallKind = records.APP,
    ) -> calls_pb2.StartCallReply:
        """Offer a call to the callee's devices that take calls now (none: push). A call
        from a phone or a conference (`from_number`: the number, or the conference id) has
        the remote leg as its caller."""
        app = caller.application_key
        await self._require_registered(app, callee)
        devices = (await self._presence.devices(app, [callee]))[callee]
        record = records.new_call(
            call_id=call_id,
            application_key=app,
            caller_user_id=caller.user_id,
            caller_session_id=caller.session_id,
            callee_user_id=callee,
            video=video,
            headers=headers,
            offer_sdp=offer_sdp,
            offered_session_ids=[d.session_id for d in devices if d.calling and d.listening],
            now_ms=self._now_ms(),
            setup_timeout_ms=self._setup_ms,
            ringing_timeout_ms=self._ringing_ms,
            kind=kind,
            destination=from_number,
        )
        stored = await self._create(caller, record)
        if stored is not record:
            return self._started_before(caller, stored)
        incoming = calls_pb2.CallIncoming(
            call_id=record.call_id,
            caller_user_id=records.caller_name(record),
            video=record.video,
            headers=headers,
            offer_sdp=offer_sdp,
            started_at_ms=record.started_at_ms,
            kind=record.kind,
        )
        await self._events.send(app, records.offered_targets(record), incoming)
        reply = _start_reply(record)
        if not record.offered_session_ids:
            reply.push_pairs.extend(await self._push(record))
        return reply

    async def _start_remote_call(
        self,
        caller: Caller,
        request: calls_pb2.StartCall,
        kind: calls_pb2.CallKind,
        destination: str,
        offer_sdp: str,
    ) -> calls_pb2.StartCallReply:
        """A call to a phone, a SIP address or a conference: its callee is a remote leg,
        which the service that holds such legs (sip, conference) places when it takes the
        DialRequest. Its refusal (not
        enough credit, no trunk, ...) fails the StartCall with that error."""
        headers = validate_headers(dict(request.headers))
        if kind in records.SIP_KINDS:
            headers = validate_sip_headers(headers)
        record = records.new_call(
            call_id=request.call_id,
            application_key=caller.application_key,
            caller_user_id=caller.user_id,
            caller_session_id=caller.session_id,
            callee_user_id="",
            video=False,
            headers=headers,
            offer_sdp=offer_sdp,
            offered_session_ids=[records.LEG_SESSION],
            now_ms=self._now_ms(),
            setup_timeout_ms=self._setup_ms,
            ringing_timeout_ms=self._ringing_ms,
            kind=kind,
            destination=destination,
        )
        stored = await self._create(caller, record)
        if stored is not record:
            return self._started_before(caller, stored)
        service = records.LEG_SERVICES[kind]
        try:
            dialled = await self._dial(service, record)
        except ParleyError as exc:
            await self._store.change(
                record.application_key,
                record.call_id,
                lambda current: records.fail(current, self._now_ms()),
            )
            log.info(
                "call_dial_refused",
                app=record.application_key,
                call=record.call_id,
                kind=records.kind_name(kind),
                error=exc.reason,
            )
            raise
        log.info(
            "call_dialled",
            app=record.application_key,
            call=record.call_id,
            kind=records.kind_name(kind),
            replica=dialled.replica_id,
        )
        return _start_reply(record)

    async def _dial(self, service: str, record: calls_pb2.CallRecord) -> calls_pb2.DialReply:
        """Offer the call's far side to `service`. A replica that refused it as UNAVAILABLE
        (full, or stopping) did nothing: another may take it, so it is offered again."""
        for attempt in range(1, DIAL_ATTEMPTS + 1):
            try:
                return await self._bus.request(
                    subjects.call_dial(service),
                    calls_pb2.DialRequest(call=record),
                    calls_pb2.DialReply,
                    DIAL_TIMEOUT_SECONDS,
                )
            except ParleyError as exc:
                if exc.code != ErrorCode.ERROR_CODE_UNAVAILABLE:
                    raise
                if attempt == DIAL_ATTEMPTS:
                    if isinstance(exc, Unreachable):
                        raise ParleyError(
                            ErrorCode.ERROR_CODE_UNAVAILABLE,
                            f"no {service} service can take the call now (each is full, or "
                            "none runs); retry shortly",
                        ) from exc
                    raise
                await asyncio.sleep(DIAL_RETRY_SECONDS * attempt)
        raise AssertionError("unreachable")

    async def _create(self, caller: Caller, record: calls_pb2.CallRecord) -> calls_pb2.CallRecord:
        """Write a new call's record; `record` itself when this request wrote it, else the
        record a racing retry of the same StartCall wrote."""
        if not await self._store.create(record):
            stored = await self._store.get(record.application_key, record.call_id)
            if stored is None:
                raise ParleyError(
                    ErrorCode.ERROR_CODE_UNAVAILABLE, "the call changed while starting; retry"
                )
            return stored.record
        CALLS_STARTED.labels(
            records.kind_name(record.kind), app_label(record.application_key)
        ).inc()
        log.info(
            "call_started",
            app=record.application_key,
            call=record.call_id,
            caller=caller.user_id,
            callee=record.callee_user_id or record.destination,
            kind=records.kind_name(record.kind),
            video=record.video,
            devices=len(record.offered_session_ids),
        )
        return record

    async def _push(self, record: calls_pb2.CallRecord) -> list[common_pb2.PushPair]:
        """No callee device was reached: the push service pushes to the callee's devices
        with managed push; the pairs of the others are for the caller's app. The call rings
        on without pairs when the push service cannot be asked."""
        request = push_pb2.NotifyRequest(
            application_key=record.application_key,
            recipient_ids=[record.callee_user_id],
            call=push_pb2.CallPush(
                call_id=record.call_id,
                caller_user_id=records.caller_name(record),
                headers=record.headers,
                video=record.video,
                started_at_ms=record.started_at_ms,
                ring_until_ms=record.deadline_ms,
            ),
        )
        try:
            reply = await self._bus.request(
                subjects.PUSH_NOTIFY, request, push_pb2.NotifyReply, NOTIFY_TIMEOUT_SECONDS
            )
        except ParleyError as exc:
            log.warning(
                "push_notify_failed",
                app=record.application_key,
                call=record.call_id,
                error=exc.reason,
            )
            return []
        return [pair for recipient in reply.recipients for pair in recipient.push_pairs]

    def _started_before(
        self, caller: Caller, record: calls_pb2.CallRecord
    ) -> calls_pb2.StartCallReply:
        """A StartCall with the id of a call that exists: the same caller's retry gets the
        same reply; anyone else's is refused."""
        if (record.caller_user_id, record.caller_session_id) != (
            caller.user_id,
            caller.session_id,
        ):
            raise ParleyError(
                ErrorCode.ERROR_CODE_PERMISSION_DENIED,
                "this call id belongs to another call",
                "call_id",
            )
        return _start_reply(record)

    async def _require_registered(self, application_key: str, user_id: str) -> None:
        """NOT_FOUND unless the user ever registered a device (asked of auth)."""
        found = await self._bus.request(
            subjects.AUTH_USER_LOOKUP,
            auth_pb2.UserLookupRequest(application_key=application_key, user_id=user_id),
            auth_pb2.UserLookupResponse,
            USER_LOOKUP_TIMEOUT_SECONDS,
        )
        if not found.registered:
            raise ParleyError(
                ErrorCode.ERROR_CODE_NOT_FOUND,
                f"{user_id} has never registered a device in this application",
                "callee_user_id",
            )

    # ring, answer ---------------------------------------------------------------------

    async def ring_call(self, caller: Caller, request: calls_pb2.RingCall) -> calls_pb2.CallAck:
        call_id = validate_call_id(request.call_id)
        change = await self._store.change(
            caller.application_key,
            call_id,
            lambda record: records.ring(
                record, self._actor(record, caller), self._now_ms(), self._ringing_ms
            ),
        )
        if change.changed:
            log.info("call_ringing", app=caller.application_key, call=call_id)
            await self._events.send(
                caller.application_key,
                [records.caller_target(change.after)],
                calls_pb2.CallProgressing(call_id=call_id),
            )
        return _ack(change.after)

    async def answer_call(self, caller: Caller, request: calls_pb2.AnswerCall) -> calls_pb2.CallAck:
        call_id = validate_call_id(request.call_id)
        answer_sdp = validate_sdp(request.answer_sdp, "answer_sdp")
        change = await self._store.change(
            caller.application_key,
            call_id,
            lambda record: records.answer(record, self._actor(record, caller), self._now_ms()),
        )
        if change.changed:
            after = change.after
            SETUP_SECONDS.labels(records.kind_name(after.kind)).observe(
                max(0, after.answered_at_ms - after.started_at_ms) / 1000
            )
            log.info("call_answered", app=caller.application_key, call=call_id)
            if change.before.phase == records.INITIATING:
                # Answered before its RingCall got here (a device may send both at once, and
                # they travel apart): the caller still hears the callee was reached first.
                await self._events.send(
                    caller.application_key,
                    [records.caller_target(after)],
                    calls_pb2.CallProgressing(call_id=call_id),
                )
            await self._events.send(
                caller.application_key,
                [records.caller_target(after)],
                calls_pb2.CallAnswered(call_id=call_id, answer_sdp=answer_sdp),
            )
            others = records.offered_targets(after, but=caller.session_id)
            if others:
                ended = calls_pb2.CallEnded(
                    call_id=call_id,
                    cause=records.OTHER_DEVICE_ANSWERED,
                    ended_at_ms=after.answered_at_ms,
                )
                await self._events.send(caller.application_key, others, ended)
        return _ack(change.after)

    # hang up --------------------------------------------------------------------------

    async def hangup_call(self, caller: Caller, request: calls_pb2.HangupCall) -> calls_pb2.CallAck:
        return await self._hang_up(caller, request, records.DEVICE_CAUSES)

    async def _hang_up(
        self, caller: Caller, request: calls_pb2.HangupCall, causes: frozenset[int]
    ) -> calls_pb2.CallAck:
        call_id = validate_call_id(request.call_id)
        if request.cause not in causes:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                "a device hangs up with no cause, or with FAILURE or INACTIVE",
                "cause",
            )
        change = await self._store.change(
            caller.application_key,
            call_id,
            lambda record: records.hang_up(
                record, self._actor(record, caller), request.cause, self._now_ms()
            ),
        )
        if change.changed:
            error = request.error if request.HasField("error") and request.error.code else None
            await self._events.ended(change.before, change.after, caller.session_id, error)
        return _ack(change.after)

    # signals --------------------------------------------------------------------------

    async def send_call_signal(
        self, caller: Caller, request: calls_pb2.SendCallSignal
    ) -> calls_pb2.CallAck:
        call_id = validate_call_id(request.call_id)
        _validate_signal(request.signal)
        stored = await self._store.get(caller.application_key, call_id)
        if stored is None:
            raise ParleyError(
                ErrorCode.ERROR_CODE_NOT_FOUND, f"no call {call_id} in this application", "call_id"
            )
        target = records.signal_target(stored.record, self._actor(stored.record, caller))
        await self._events.send(
            caller.application_key,
            [target],
            calls_pb2.CallSignalReceived(call_id=call_id, signal=request.signal),
        )
        return _ack(stored.record)

    # claim ----------------------------------------------------------------------------

    async def claim_call(
        self, caller: Caller, request: calls_pb2.ClaimCall
    ) -> calls_pb2.ClaimCallReply:
        call_id = validate_call_id(request.call_id)
        change = await self._store.change(
            caller.application_key,
            call_id,
            lambda record: records.claim(record, self._actor(record, caller)),
        )
        after = change.after
        offered = after.phase in (records.INITIATING, records.RINGING) and (
            caller.session_id in after.offered_session_ids
        )
        if change.changed:
            log.info("call_claimed", app=caller.application_key, call=call_id)
            incoming = calls_pb2.CallIncoming(
                call_id=call_id,
                caller_user_id=records.caller_name(after),
                video=after.video,
                headers=after.headers,
                offer_sdp=after.offer_sdp,
                started_at_ms=after.started_at_ms,
                kind=after.kind,
            )
            await self._events.send(
                caller.application_key,
                [records.Target(caller.user_id, caller.session_id)],
                incoming,
            )
        return calls_pb2.ClaimCallReply(
            call_id=call_id, phase=after.phase, end_cause=after.end_cause, offered=offered
        )

    # remote legs ----------------------------------------------------------------------

    async def leg_report(self, report: calls_pb2.LegReport) -> calls_pb2.CallAck:
        """A remote leg (the sip service's side of a phone or SIP call) rings, answers, hangs
        up or signals: the same transitions as a callee device's, acted by the leg."""
        session = report.session_id or records.LEG_SESSION
        if session not in records.LEG_SESSIONS:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                f"a leg reports as {' or '.join(sorted(records.LEG_SESSIONS))}",
                "session_id",
            )
        leg = Caller(
            application_key=report.application_key,
            user_id="",
            instance_id="",
            session_id=session,
            gateway_id="",
            connection_id="",
            capabilities=frozenset(),
        )
        kind = report.WhichOneof("report")
        if kind == "ring":
            return await self.ring_call(leg, report.ring)
        if kind == "answer":
            return await self.answer_call(leg, report.answer)
        if kind == "hangup":
            return await self._hang_up(leg, report.hangup, records.LEG_CAUSES)
        if kind == "signal":
            return await self.send_call_signal(leg, report.signal)
        if kind == "incoming":
            return await self._leg_incoming(leg, report.incoming)
        if kind == "start":
            return await self._leg_start(leg, report.start)
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "the leg report is empty", "report"
        )

    async def _leg_incoming(
        self, leg: Caller, incoming: calls_pb2.LegIncoming
    ) -> calls_pb2.CallAck:
        """A phone calls an application user, or a conference calls a user into its room:
        the leg is the caller."""
        call_id = validate_call_id(incoming.call_id)
        callee = validate_user_id(incoming.callee_user_id, "callee_user_id")
        kind = incoming.kind or records.PHONE
        if kind not in (records.PHONE, records.CONFERENCE):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                "a leg calls in from a phone or a conference only",
                "kind",
            )
        if not incoming.from_number:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "the calling number is missing", "from"
            )
        headers = validate_headers(dict(incoming.headers))
        if kind in records.SIP_KINDS:
            headers = validate_sip_headers(headers)
        offer_sdp = validate_sdp(incoming.offer_sdp, "offer_sdp")
        existing = await self._store.get(leg.application_key, call_id)
        if existing is None:
            await self._offer_to_devices(
                leg, call_id, callee, headers, offer_sdp, False, incoming.from_number, kind
            )
            existing = await self._store.get(leg.application_key, call_id)
        if existing is None:
            raise ParleyError(ErrorCode.ERROR_CODE_UNAVAILABLE, "the call vanished; retry")
        return _ack(existing.record)

    async def _leg_start(self, leg: Caller, start: calls_pb2.StartCall) -> calls_pb2.CallAck:
        """A leg calls a phone or a SIP address (a conference calls a phone in): its callee
        is another remote leg; the caller leg hears the call's events on its own subject."""
        if leg.session_id != records.LEG_CALLER_SESSION:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                f"a leg starts a call as {records.LEG_CALLER_SESSION}",
                "session_id",
            )
        if start.callee_user_id or start.conference_id:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                "a leg calls a phone number or a SIP address only",
                "callee_user_id",
            )
        await self.start_call(leg, start)
        stored = await self._store.get(leg.application_key, start.call_id)
        if stored is None:
            raise ParleyError(ErrorCode.ERROR_CODE_UNAVAILABLE, "the call vanished; retry")
        return _ack(stored.record)

    # ICE servers ----------------------------------------------------------------------

    async def get_ice_servers(
        self, caller: Caller, request: calls_pb2.GetIceServers
    ) -> calls_pb2.IceServers:
        return self._ice.servers(caller.application_key, caller.user_id, self._clock.time())

    @staticmethod
    def _actor(record: calls_pb2.CallRecord, caller: Caller) -> records.Actor:
        return records.actor_of(record, caller.user_id, caller.session_id)


def _start_reply(record: calls_pb2.CallRecord) -> calls_pb2.StartCallReply:
    return calls_pb2.StartCallReply(
        call_id=record.call_id, devices_reached=len(record.offered_session_ids)
    )


def _destination(caller: Caller, request: calls_pb2.StartCall) -> tuple[calls_pb2.CallKind, str]:
    """Whom a StartCall calls: exactly one of a user, a phone number or a SIP address (with
    neither of the others, the user, so an empty one is an invalid user id)."""
    given = [
        (kind, value)
        for kind, value in (
            (records.APP, request.callee_user_id),
            (records.PHONE, request.phone_number),
            (records.SIP, request.sip_uri),
            (records.CONFERENCE, request.conference_id),
        )
        if value
    ]
    if len(given) > 1:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            "a call names exactly one of callee_user_id, phone_number, sip_uri and conference_id",
            "callee_user_id",
        )
    kind, value = given[0] if given else (records.APP, "")
    if kind == records.PHONE:
        return kind, validate_phone_number(value, "phone_number")
    if kind == records.SIP:
        return kind, validate_sip_identity(value, "sip_uri")
    if kind == records.CONFERENCE:
        return kind, validate_conference_id(value, "conference_id")
    callee = validate_user_id(value, "callee_user_id")
    if callee == caller.user_id:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "you cannot call yourself", "callee_user_id"
        )
    return kind, callee


def _validate_signal(signal: calls_pb2.CallSignal) -> None:
    kind = signal.WhichOneof("kind")
    if kind is None:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            "the signal is empty: an offer, an answer, video_paused or DTMF digits",
            "signal",
        )
    if kind == "offer_sdp":
        validate_sdp(signal.offer_sdp, "signal.offer_sdp")
    elif kind == "answer_sdp":
        validate_sdp(signal.answer_sdp, "signal.answer_sdp")
    elif kind == "dtmf":
        validate_dtmf(signal.dtmf, "signal.dtmf")
