"""The dialler: takes the far side of phone and SIP calls (DialRequest on
parley.call.dial.sip), places each as a leg on this replica, and keeps them until they end.

- The test number: answered here, with the prompt (no trunk, no credit).
- Another phone number: credit is reserved first (INSUFFICIENT_CREDIT refuses the call
  before anything is dialled), then the trunk is called with the number.
- A SIP address: called directly, with the caller's x- headers on the INVITE, when its
  host is one the deployment allows (PARLEY_SIP_ALLOWED_DOMAINS; PERMISSION_DENIED
  otherwise, before anything is sent).
- A call from the trunk (`on_invite`) to a number mapped to a user rings that user.

A retried DialRequest of a call this replica holds gets the same answer. A replica listens
for dials only while it has room (`capacity`: the setting, capped by the SIP stack's own
limit of calls per process): a full one leaves the queue group, so dials go to the others,
and joins again when a call ends. A stopping replica takes no new calls and lets its live
ones go on for the drain time.
"""

from __future__ import annotations

import asyncio
import re
import uuid

from nats.aio.client import Client as NATS

from parley.v1 import auth_pb2, calls_pb2
from parley_legs.holder import LegHolder
from parley_legs.leg import AudioLeg
from parley_legs.reports import LegReporter
from parley_protocol import subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.validation import validate_phone_number, validate_sip_identity
from parley_service.bus import Bus
from parley_service.logs import get_logger
from parley_sip.bridge import SipBridge
from parley_sip.credits import Credits
from parley_sip.domains import host_of
from parley_sip.engine import Credentials, IncomingInvite, SipEngine
from parley_sip.inbound import InboundBridge
from parley_sip.metrics import DIALS_REFUSED
from parley_sip.settings import SipSettings
from parley_sip.test_number import TestNumberLeg

log = get_logger("parley.sip.dial")

NUMBER_LOOKUP_TIMEOUT_SECONDS = 2.0

PHONE = calls_pb2.CALL_KIND_PHONE
SIP = calls_pb2.CALL_KIND_SIP


_SIP_USER = re.compile(r"sips?:([^@;>]+)@")


def calling_number(from_uri: str) -> str:
    """The user part of a From URI ("sip:+15551230000@host" -> "+15551230000"), at most 40
    characters (a user id's length), or "anonymous"."""
    found = _SIP_USER.search(from_uri)
    user = found.group(1).strip() if found else ""
    return user[:40] if user and user.isprintable() else "anonymous"


def _refused(reason: str, code: int, message: str, field: str = "") -> ParleyError:
    DIALS_REFUSED.labels(reason).inc()
    return ParleyError(code, message, field)


class Dialler:
    def __init__(
        self,
        settings: SipSettings,
        nc: NATS,
        engine: SipEngine,
        credits: Credits,
        reporter: LegReporter,
        listener: Bus,
        bus: Bus,
    ) -> None:
        self._settings = settings
        self._nc = nc
        self._engine = engine
        self._credits = credits
        self._reporter = reporter
        self._bus = bus
        # Calls this replica holds at once: the setting, within what the SIP stack allows.
        self.capacity = min(settings.sip_max_calls, engine.max_calls)
        self.held: LegHolder[AudioLeg] = LegHolder(self.listen)
        self.draining = False
        # The dial endpoint, served while there is room.
        self._listener = listener
        self._listening = False
        self._listen_lock = asyncio.Lock()
        listener.endpoint(
            subjects.call_dial(subjects.SIP_QUEUE),
            calls_pb2.DialRequest,
            self.dial,
            subjects.SIP_QUEUE,
        )

    async def listen(self) -> None:
        """Serve dials while there is room, stop while full or draining."""
        async with self._listen_lock:
            want = not self.draining and len(self.held) < self.capacity
            if want and not self._listening:
                await self._listener.serve()
            elif not want and self._listening:
                await self._listener.stop_serving()
            self._listening = want

    async def dial(self, request: calls_pb2.DialRequest) -> calls_pb2.DialReply:
        record = request.call
        reply = calls_pb2.DialReply(replica_id=self._settings.instance_id)
        key = subjects.call_key(record.application_key, record.call_id)
        if key in self.held:
            return reply
        if self.draining:
            raise _refused(
                "draining", ErrorCode.ERROR_CODE_UNAVAILABLE, "this SIP gateway is stopping"
            )
        if len(self.held) >= self.capacity:
            # Taken while it left the queue group: the calls service dials again.
            raise _refused(
                "full",
                ErrorCode.ERROR_CODE_UNAVAILABLE,
                f"this SIP gateway holds its most calls ({self.capacity})",
            )
        leg = await self._leg(record)
        await self.held.hold(key, leg)
        log.info("leg_placed", app=record.application_key, call=record.call_id, kind=leg.kind)
        return reply

    async def _leg(self, record: calls_pb2.CallRecord) -> AudioLeg:
        settings = self._settings
        headers = dict(record.headers)
        if record.kind == PHONE:
            number = validate_phone_number(record.destination, "phone_number")
            if number == settings.sip_test_number:
                return TestNumberLeg(self._nc, self._reporter, record)
            if not settings.has_trunk:
                raise _refused(
                    "no_trunk",
                    ErrorCode.ERROR_CODE_NOT_FOUND,
                    f"no route to {number}: this deployment has no SIP trunk for phone calls "
                    f"(the test number {settings.sip_test_number} needs none)",
                    "phone_number",
                )
            try:
                reservation = await self._credits.reserve(
                    record.application_key, record.call_id, number
                )
            except ParleyError as exc:
                DIALS_REFUSED.labels(
                    "insufficient_credit"
                    if exc.code == ErrorCode.ERROR_CODE_INSUFFICIENT_CREDIT
                    else "no_rate"
                ).inc()
                raise
            credentials = (
                Credentials(
                    settings.sip_trunk_username,
                    settings.sip_trunk_password,
                    settings.sip_trunk_realm,
                )
                if settings.sip_trunk_username
                else None
            )
            return SipBridge(
                self._nc,
                self._reporter,
                record,
                self._engine,
                settings.trunk_uri(number),
                headers,
                settings.caller_id_for(number),
                credentials,
                self._credits,
                reservation,
                settings.sip_credit_touch_seconds,
            )
        if record.kind == SIP:
            identity = validate_sip_identity(record.destination, "sip_uri")
            host = host_of(identity)
            if not settings.allowed_domains.allows(host):
                raise _refused(
                    "domain",
                    ErrorCode.ERROR_CODE_PERMISSION_DENIED,
                    f"this deployment does not call SIP addresses at {host[:64]}",
                    "sip_uri",
                )
            return SipBridge(
                self._nc,
                self._reporter,
                record,
                self._engine,
                f"sip:{identity}",
                headers,
                None,
                None,
            )
        raise _refused(
            "invalid",
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            "the sip service takes phone and SIP calls only",
            "kind",
        )

    async def on_invite(self, invite: IncomingInvite) -> None:
        """A call from the trunk: ring the user its number is mapped to."""
        number = invite.to_user
        route = await self._route(number)
        if route is None:
            log.info("inbound_unrouted", number=number, caller=invite.from_uri)
            await invite.reject(404)
            return
        if self.draining or len(self.held) >= self.capacity:
            await invite.reject(503)
            return
        record = calls_pb2.CallRecord(
            call_id=str(uuid.uuid4()),
            application_key=route.application_key,
            callee_user_id=route.user_id,
            kind=PHONE,
            destination=calling_number(invite.from_uri),
            headers={k: v for k, v in invite.headers.items() if k.startswith("x-")},
        )
        leg = InboundBridge(self._nc, self._reporter, record, invite)
        key = subjects.call_key(record.application_key, record.call_id)
        await self.held.hold(key, leg, lambda: invite.reject(500))
        log.info("inbound_placed", app=route.application_key, call=record.call_id)

    async def _route(self, number: str) -> auth_pb2.NumberLookupResponse | None:
        """Whom a call to `number` rings, as auth maps it (None: nobody, or not a number)."""
        try:
            validate_phone_number(number, "number")
            found = await self._bus.request(
                subjects.AUTH_NUMBER_LOOKUP,
                auth_pb2.NumberLookupRequest(number=number),
                auth_pb2.NumberLookupResponse,
                NUMBER_LOOKUP_TIMEOUT_SECONDS,
            )
        except ParleyError as exc:
            log.warning("inbound_lookup_failed", number=number[:32], error=exc.reason)
            return None
        return found if found.found else None

    async def drain(self) -> None:
        """Take no new calls; let the live ones go on for the drain time, then end them."""
        self.draining = True
        await self.listen()
        if self.held:
            log.info("sip_draining", live=len(self.held))
        await self.held.wait_all(self._settings.sip_drain_seconds)
        await self.stop()

    async def stop(self) -> None:
        """End every live leg (telling the calls service) and wait for their tasks."""
        self.draining = True
        await self.listen()
        await self.held.end_all("drained")
