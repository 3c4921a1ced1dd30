"""Device events from the bus to the sessions they are for.

Each user connected here has one subscription on `parley.dev.<app>.<user>`, shared by
all of that user's sessions on this gateway and dropped with the last of them; the gateway
has one wildcard subscription on `parley.conn.<gateway_id>.*` for events addressed to one
connection. Every message lands in one queue, drained in order by one task: a
`parley.v1.DeviceEvent` whose envelope goes to the target sessions (except
`except_connection_id`), numbered with each session's own server seq.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from parley.v1 import client_pb2, presence_pb2
from parley_gateway.metrics import DELIVERIES
from parley_gateway.nats_interest import SubjectMux
from parley_gateway.session import Session
from parley_protocol import framing, subjects
from parley_service.logs import get_logger

log = get_logger("parley.gateway.routing")

SessionLookup = Callable[[str], Session | None]


class Router:
    def __init__(self, nc: NATS, gateway_id: str, light: bool = True) -> None:
        self.mux = SubjectMux(nc, light=light)
        self.gateway_id = gateway_id
        self._connections_subject = subjects.gateway_connections(gateway_id)
        self._connection_prefix = self._connections_subject[:-1]  # "parley.conn.<gw>."
        # Subject of a user's device events -> that user's signed-in sessions here.
        self._users: dict[str, list[Session]] = {}
        self._lookup: SessionLookup = lambda _: None
        self._task: asyncio.Task[None] | None = None

    @property
    def users(self) -> int:
        return len(self._users)

    async def start(self, lookup: SessionLookup) -> None:
        self._lookup = lookup
        await self.mux.add(self._connections_subject)
        self._task = asyncio.create_task(self._deliver_loop(), name="gateway-deliver")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._users.clear()
        try:
            await self.mux.clear()
        except Exception as exc:
            log.warning("unsubscribe_failed", error=str(exc))

    async def add(self, session: Session) -> None:
        """Deliver the user's device events to `session` (subscribing for its first one)."""
        subject = subjects.device_events(session.application_key, session.user_id)
        sessions = self._users.get(subject)
        if sessions is not None:
            sessions.append(session)
            return
        self._users[subject] = [session]
        try:
            await self.mux.add(subject)
        except Exception:
            self._drop(subject, session)
            raise

    async def remove(self, session: Session) -> None:
        subject = subjects.device_events(session.application_key, session.user_id)
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

    async def deliver(self, msg: Msg) -> int:
        """Write one bus message's envelope to its target sessions; returns how many."""
        event = presence_pb2.DeviceEvent()
        envelope = client_pb2.Envelope()
        try:
            event.ParseFromString(msg.data)
            envelope.ParseFromString(event.envelope)
        except DecodeError:
            DELIVERIES.labels("bad_event").inc()
            log.warning("device_event_unreadable", subject=msg.subject)
            return 0
        if framing.body_name(envelope) not in framing.SERVER_BODIES:
            DELIVERIES.labels("bad_event").inc()
            log.warning(
                "device_event_not_a_server_message",
                subject=msg.subject,
                body=framing.body_name(envelope),
            )
            return 0
        if msg.subject.startswith(self._connection_prefix):
            one = self._lookup(msg.subject[len(self._connection_prefix) :])
            targets = [one] if one is not None else []
        else:
            targets = list(self._users.get(msg.subject, ()))
        delivered = 0
        for session in targets:
            if session.connection_id == event.except_connection_id or not session.active:
                continue
            if await session.send(envelope):
                delivered += 1
        DELIVERIES.labels("delivered" if delivered else "no_session").inc()
        return delivered
