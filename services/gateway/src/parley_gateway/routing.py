"""Device events from the bus to the sessions they are for.

Each user connected here has one subscription, shared by all of that user's sessions on
this gateway and dropped with the last of them: `parley.ev.<app>.<user>.>` (the numbered
copies the resume window republishes) or, with the window off, `parley.dev.<app>.<user>.>`.
The last token of an event's subject is its target: `_` for every device of the user
(except `except_session_id`), or one session id. Every message lands in one queue, drained
in order by one task, which writes the envelope to the target sessions with the event's
number (`Envelope.event`: its sequence in the window, 0 without one). A session never gets
an event numbered at or below one it already has (a resume's replay and live events
overlap). That task never waits for a client (`Session.send` drops one that stops
reading), and a session still signing in holds its events until its Welcome is out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS

from parley.v1 import client_pb2, routing_pb2
from parley_gateway.metrics import DELIVERIES
from parley_gateway.nats_interest import Delivery, SubjectMux
from parley_gateway.session import Session
from parley_protocol import bodies, framing, subjects
from parley_service import tasks
from parley_service.logs import get_logger

log = get_logger("parley.gateway.routing")

OverflowHandler = Callable[[Session], None]


class Router:
    def __init__(self, nc: NATS, window: bool, light: bool = True) -> None:
        self.mux = SubjectMux(nc, light=light)
        # With the resume window: subscribe to its numbered copies of the events.
        self.window = window
        # Subject of a user's device events -> that user's signed-in sessions here.
        self._users: dict[str, list[Session]] = {}
        # Subject -> its first subscribe, while in flight: later sessions wait for it.
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        self._overflow: OverflowHandler = lambda _: None
        self._task: asyncio.Task[None] | None = None

    @property
    def users(self) -> int:
        return len(self._users)

    def sessions_of(self, application_key: str, user_id: str) -> list[Session]:
        """The signed-in sessions of a user on this gateway."""
        subject = subjects.user_events(application_key, user_id, live=self.window)
        return list(self._users.get(subject, ()))

    def subject(self, session: Session) -> str:
        return subjects.user_events(session.application_key, session.user_id, live=self.window)

    def routed(self, session: Session) -> bool:
        """Whether the user's events reach this gateway now (the server has the interest)."""
        subject = self.subject(session)
        return subject in self._users and subject not in self._subscribing

    async def start(self, overflow: OverflowHandler) -> None:
        """Deliver events; `overflow` gets a session still signing in with too many held."""
        self._overflow = overflow
        await self.mux.start()  # light-mode self-test (falls back to ordinary subscriptions)
        self._task = asyncio.create_task(self._deliver_loop(), name="gateway-deliver")

    async def stop(self) -> None:
        await tasks.stop(self._task)
        self._task = None
        self._users.clear()
        self._subscribing.clear()
        try:
            await self.mux.clear()
        except Exception as exc:
            log.warning("unsubscribe_failed", error=str(exc))

    async def add(self, session: Session) -> None:
        """Deliver the user's device events to `session` (subscribing for its first one).

        Returns once the subscription is in place; when it cannot be made, every session of
        the user that waited for it fails too and the user is not routed at all.
        """
        subject = self.subject(session)
        sessions = self._users.get(subject)
        if sessions is not None:
            sessions.append(session)
            subscribing = self._subscribing.get(subject)
            if subscribing is not None:
                await asyncio.shield(subscribing)
            return
        self._users[subject] = [session]
        subscribing = asyncio.get_running_loop().create_future()
        self._subscribing[subject] = subscribing
        try:
            await self.mux.add(subject)
        except BaseException as exc:
            if self._subscribing.get(subject) is subscribing:
                del self._subscribing[subject]
                self._users.pop(subject, None)
                try:
                    await self.mux.remove(subject)
                except Exception as remove_exc:
                    log.warning("unsubscribe_failed", error=str(remove_exc))
            failure = exc if isinstance(exc, Exception) else ConnectionError("sign-in ended")
            subscribing.set_exception(failure)
            subscribing.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        if self._subscribing.get(subject) is subscribing:
            del self._subscribing[subject]
        subscribing.set_result(None)

    async def remove(self, session: Session) -> None:
        subject = self.subject(session)
        if self._drop(subject, session):
            try:
                await self.mux.remove(subject)
            except Exception as exc:
                log.warning("unsubscribe_failed", error=str(exc))

    def _drop(self, subject: str, session: Session) -> bool:
        """Forget `session`; True when it was the user's last one here."""
        sessions = self._users.get(subject)
        if sessions is None:
            return False
        if session in sessions:
            sessions.remove(session)
        if sessions:
            return False
        del self._users[subject]
        return True

    async def _deliver_loop(self) -> None:
        queue = self.mux.queue
        while True:
            msg = await queue.get()
            try:
                await self.deliver(msg)
            except Exception:
                log.exception("device_event_failed", subject=msg.subject)

    async def deliver(self, msg: Delivery) -> int:
        """Write one bus message's envelope to its target sessions; returns how many."""
        event = routing_pb2.DeviceEvent()
        envelope = client_pb2.Envelope()
        try:
            event.ParseFromString(msg.data)
            if len(event.envelope) > framing.MAX_EVENT_BYTES:
                return _refuse(msg, "device_event_too_large", size=len(event.envelope))
            envelope.ParseFromString(event.envelope)
        except DecodeError:
            return _refuse(msg, "device_event_unreadable")
        body = framing.body_name(envelope)
        if body not in bodies.EVENT_BODIES:
            return _refuse(msg, "device_event_not_an_event", body=body)
        envelope.reply_to = 0  # an event answers no request of this client's
        # The trace the event was sent in, recorded: the client continues it (a callee's
        # answer is in the call's trace).
        envelope.traceparent = msg.traceparent
        if self.window:
            envelope.event = msg.sequence
        head, _, target = msg.subject.rpartition(".")
        sessions = list(self._users.get(head + ".>", ()))
        delivered = 0
        for session in sessions:
            if target != subjects.ALL_DEVICES and session.session_id != target:
                continue
            if session.session_id == event.except_session_id or not session.active:
                continue
            if session.held is not None:  # signing in: goes out right after the Welcome
                if session.hold(envelope):
                    delivered += 1
                else:
                    self._overflow(session)
            elif await session.send_event(envelope):
                delivered += 1
        DELIVERIES.labels("delivered" if delivered else "no_session").inc()
        return delivered


def _refuse(msg: Delivery, event: str, **fields: object) -> int:
    DELIVERIES.labels("bad_event").inc()
    log.warning(event, subject=msg.subject, **fields)
    return 0
