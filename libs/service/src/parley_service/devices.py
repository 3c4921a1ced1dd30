"""Events to devices, from any service: to every connected device of a user, or to one.

An event is one EVENT body of the client protocol (see `parley_protocol.bodies`), published
as a `parley.v1.DeviceEvent` on the user's or the connection's subject; every gateway
holding a device of that user writes it to the device's WebSocket.

What this path guarantees: at most once. An event published while the device is
reconnecting, or queued on a gateway that crashes, is lost. A capability that needs more
(messages, receipts) keeps its own record and acknowledgement end to end.
"""

from __future__ import annotations

from google.protobuf.message import Message
from nats.aio.client import Client as NATS

from parley.v1 import routing_pb2
from parley_protocol import bodies, framing, subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import tracing


class DeviceEvents:
    def __init__(self, nc: NATS) -> None:
        self._nc = nc

    async def to_user(
        self, application_key: str, user_id: str, event: Message, except_session_id: str = ""
    ) -> None:
        """Send `event` to every connected device of the user (but the session
        `except_session_id`: the sender's own, say)."""
        await self._publish(
            subjects.device_events(application_key, user_id), event, except_session_id
        )

    async def to_connection(self, gateway_id: str, connection_id: str, event: Message) -> None:
        """Send `event` to one device connection (as a presence record or Caller names it)."""
        await self._publish(subjects.connection_events(gateway_id, connection_id), event, "")

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
        await self._nc.publish(subject, data, headers=tracing.inject({}) or None)
