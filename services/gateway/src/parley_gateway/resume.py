"""Session resume: a reconnecting device takes its session back, with the events it missed.

A Hello may name the device's previous session and the last event it handled. The session
is resumed when its record (the session's presence entry, which stays the resume window
after its connection ended, or until its crashed gateway's last refresh runs out) is found
under the verified application and user, belongs to the same device instance, and the
window holds no more missed events than it keeps for a device. The events after the ack
are then replayed, in order, right after the Welcome, before anything new; a connection
still holding the session (the device switched networks; its old gateway has not noticed)
is closed. Otherwise the device gets a new session, and the Welcome says why not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.aio.client import Client as NATS

from parley.v1 import client_pb2, presence_pb2
from parley_gateway.metrics import EVENTS_REPLAYED, RESUMES
from parley_gateway.session import Session
from parley_gateway.window import EventWindow
from parley_protocol import subjects
from parley_service.logs import get_logger

log = get_logger("parley.gateway.resume")

Outcome = client_pb2.ResumeOutcome

# Session ids this gateway family hands out: URL-safe tokens (see session.new_connection_id).
MAX_SESSION_ID = 64


@dataclass(frozen=True)
class Decision:
    outcome: client_pb2.ResumeOutcome
    reason: str = ""
    missed: list[client_pb2.Envelope] = field(default_factory=list)
    # The record of the device's session while it still looked connected: that old
    # connection is closed (the session goes on here, or the device starts a new one).
    holder: presence_pb2.PresenceEntry | None = None

    @property
    def resumed(self) -> bool:
        return self.outcome == client_pb2.RESUME_OUTCOME_RESUMED


def valid_session_id(session_id: str) -> bool:
    return 0 < len(session_id) <= MAX_SESSION_ID and all(
        c.isalnum() or c in "-_" for c in session_id
    )


class Resumer:
    def __init__(self, nc: NATS, gateway_id: str, window: EventWindow) -> None:
        self._nc = nc
        self._gateway_id = gateway_id
        self.window = window

    async def decide(
        self,
        session: Session,
        previous: str,
        after: int,
        record: presence_pb2.PresenceEntry | None,
    ) -> Decision:
        """Whether `session` (signed in as its verified user, routed, holding its live
        events) may go on as `previous`, and what it missed after event `after`; `record`
        is the entry of `previous` under that user (read for the Hello), or None."""
        checked = self._check(session, previous, record)
        if isinstance(checked, Decision):
            decision = checked
        else:
            holder = None if checked.disconnected_at_ms else checked
            missed = await self.window.missed(
                session.application_key, session.user_id, previous, after
            )
            decision = (
                Decision(
                    Outcome.RESUME_OUTCOME_OVERFLOWED,
                    f"{self.window.max_events} or more events were missed; the window keeps "
                    f"{self.window.max_events} per device",
                    holder=holder,
                )
                if missed.overflowed
                else Decision(Outcome.RESUME_OUTCOME_RESUMED, missed=missed.events, holder=holder)
            )
        RESUMES.labels(
            client_pb2.ResumeOutcome.Name(decision.outcome).removeprefix("RESUME_OUTCOME_").lower()
        ).inc()
        if decision.resumed:
            EVENTS_REPLAYED.inc(len(decision.missed))
        else:
            log.info("resume_refused", outcome=decision.outcome, reason=decision.reason)
        return decision

    def _check(
        self, session: Session, previous: str, record: presence_pb2.PresenceEntry | None
    ) -> Decision | presence_pb2.PresenceEntry:
        """The refusal of a resume that cannot be, or the record of the session it takes."""
        if not self.window.enabled:
            return Decision(Outcome.RESUME_OUTCOME_DISABLED, "this deployment keeps no window")
        if not valid_session_id(previous):
            return Decision(Outcome.RESUME_OUTCOME_EXPIRED, "not a session id")
        if record is None:
            return Decision(
                Outcome.RESUME_OUTCOME_EXPIRED,
                f"no session {previous} of this user within the last "
                f"{self.window.window_seconds:g} s",
            )
        if record.instance_id != session.instance_id:
            log.warning("resume_of_another_device", app=session.application_key)
            return Decision(Outcome.RESUME_OUTCOME_REFUSED, "the session is another device's")
        return record

    async def take_over(self, session: Session, holder: presence_pb2.PresenceEntry) -> None:
        """Have the gateway that still holds the device's old connection close it."""
        if holder.connection_id == session.connection_id:
            return
        takeover = presence_pb2.SessionTakeover(
            session_id=holder.session_id or holder.connection_id,
            application_key=session.application_key,
            user_id=session.user_id,
            gateway_id=self._gateway_id,
            connection_id=session.connection_id,
        )
        await self._nc.publish(
            subjects.gateway_takeover(holder.gateway_id), takeover.SerializeToString()
        )
