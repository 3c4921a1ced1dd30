"""Events to devices, from any service: to every connected device of a user, or to one of
its device sessions.

An event is one EVENT body of the client protocol (see `parley_protocol.bodies`), published
as a `parley.v1.DeviceEvent` on `parley.dev.<app>.<user>.<target>`; every gateway holding a
device of that user writes it to the device's WebSocket.

What this path guarantees: with the resume window on (`PARLEY_EVENT_WINDOW_SECONDS`, the
default) an event is published to the stream EVENTS and acknowledged by it before these
calls return, numbered, and delivered to each target device exactly once, also across a
reconnect or the crash of the device's gateway, as long as the device comes back within
the window. With the window off, at most once.
"""

from __future__ import annotations

from google.protobuf.message import Message
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError

from parley.v1 import routing_pb2
from parley_protocol import bodies, framing, subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import tracing
from parley_service.acked import AckedPublisher

# How long a publish waits for the window's acknowledgement.
WINDOW_ACK_SECONDS = 2.0


class DeviceEvents:
    def __init__(self, nc: NATS, window: bool = True) -> None:
        """`window`: the deployment keeps a resume window (settings.event_window_seconds)."""
        self._nc = nc
        self._window = AckedPublisher(nc, WINDOW_ACK_SECONDS) if window else None

    async def to_user(
        self, application_key: str, user_id: str, event: Message, except_session_id: str = ""
    ) -> None:
        """Send `event` to every connected device of the user (but the session
        `except_session_id`: the sender's own, say)."""
        await self._publish(
            subjects.device_events(application_key, user_id), event, except_session_id
        )

    async def to_session(
        self, application_key: str, user_id: str, session_id: str, event: Message
    ) -> None:
        """Send `event` to one device session (as a Caller or a presence record names it)."""
        await self._publish(
            subjects.session_events(application_key, user_id, session_id), event, ""
        )

    async def _publish(self, subject: str, event: Message, except_session_id: str) -> None:
        body = bodies.body_of(event)
        if body not in bodies.EVENT_BODIES:
            raise TypeError(f"{body} is not an EVENT body of parley.v1.Envelope")
        envelope = framing.encode(bodies.envelope_of(event))
        if len(envelope) > framing.MAX_EVENT_BYTES:
            raise ParleyError(
                ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
                f"a {body} event of {len(envelope)} bytes does not fit a frame "
                f"({framing.MAX_FRAME_BYTES} bytes)",
            )
        data = routing_pb2.DeviceEvent(
            envelope=envelope, except_session_id=except_session_id
        ).SerializeToString()
        headers = tracing.inject({}) or None
        if self._window is None:
            await self._nc.publish(subject, data, headers=headers)
            return
        try:
            await self._window.start()
            await self._window.stored(subject, data, headers)
        except NatsError as exc:
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNAVAILABLE,
                f"the event window did not take a {body} event ({type(exc).__name__}); retry",
            ) from exc
