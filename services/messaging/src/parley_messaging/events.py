"""Messaging events to users' devices, each sent after the write it tells of committed.

Messages and receipts go through the resume window (`DeviceEvents` waits for the window to
take each), so a device that reconnects within it still gets them; a device away longer
fetches its messages (FetchMessages). A failed send is logged and counted; what it told
stands (the message is stored, the receipt recorded), and the caller learns which sends
were taken: only those are marked told (the sweeper tells the rest again). Typing indicators are published
without waiting for the window: they are not stored and a late one is worthless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import nats.errors
from google.protobuf.message import Message

from parley.v1 import messaging_pb2
from parley_messaging.commits import Receipt
from parley_messaging.metrics import EVENTS_FAILED
from parley_protocol import bodies
from parley_protocol.errors import ParleyError
from parley_service.devices import DeviceEvents
from parley_service.logs import get_logger

log = get_logger("parley.messaging.events")

_SEND_ERRORS = (ParleyError, nats.errors.Error, OSError, TimeoutError)


class MessageEvents:
    def __init__(self, devices: DeviceEvents, typing_devices: DeviceEvents) -> None:
        """`devices` through the window; `typing_devices` without waiting for it."""
        self._devices = devices
        self._typing = typing_devices

    async def message_accepted(
        self, application_key: str, message: messaging_pb2.Message, except_session_id: str = ""
    ) -> bool:
        """MessageIncoming to every device of each recipient, MessageSent to every device of
        the sender but the session `except_session_id` (the sending one, which has its
        reply), all at once; whether all were taken."""
        told = await asyncio.gather(
            self.incoming(application_key, message, message.recipient_ids),
            self.sent(application_key, message, except_session_id),
        )
        return all(told[0]) and told[1]

    async def sent(
        self, application_key: str, message: messaging_pb2.Message, except_session_id: str = ""
    ) -> bool:
        """MessageSent to every device of the sender but the session `except_session_id`;
        whether it was taken."""
        event = messaging_pb2.MessageSent(message=message)
        return all(
            await self._send_all(application_key, [(message.sender_id, event, except_session_id)])
        )

    async def incoming(
        self, application_key: str, message: messaging_pb2.Message, user_ids: Sequence[str]
    ) -> list[bool]:
        """MessageIncoming again to every device of these recipients; which were taken."""
        incoming = messaging_pb2.MessageIncoming(message=message)
        return await self._send_all(application_key, [(user, incoming, "") for user in user_ids])

    async def delivered(self, application_key: str, receipts: Sequence[Receipt]) -> list[bool]:
        """MessageDelivered to every device of each message's sender; which were taken."""
        return await self._send_all(
            application_key,
            [
                (
                    r.sender_id,
                    messaging_pb2.MessageDelivered(
                        message_id=str(r.message_id), recipient_id=r.user_id, timestamp_ms=r.at_ms
                    ),
                    "",
                )
                for r in receipts
            ],
        )

    async def read(self, application_key: str, receipts: Sequence[Receipt]) -> list[bool]:
        """MessageRead to every device of each message's sender; which were taken."""
        return await self._send_all(
            application_key,
            [
                (
                    r.sender_id,
                    messaging_pb2.MessageRead(
                        message_id=str(r.message_id), reader_id=r.user_id, timestamp_ms=r.at_ms
                    ),
                    "",
                )
                for r in receipts
            ],
        )

    async def typing(
        self, application_key: str, recipient_id: str, sender_id: str, typing: bool
    ) -> None:
        """TypingChanged to every device of the recipient (best effort)."""
        event = messaging_pb2.TypingChanged(sender_id=sender_id, typing=typing)
        try:
            await self._typing.to_user(application_key, recipient_id, event)
        except _SEND_ERRORS as exc:
            self._failed(event, recipient_id, exc)

    async def _send_all(
        self, application_key: str, targets: Sequence[tuple[str, Message, str]]
    ) -> list[bool]:
        """Send each event to its user's devices (but the session named beside it), all at
        once; which were taken. One target is sent without a task of its own."""
        if len(targets) == 1:
            return [await self._send_one(application_key, *targets[0])]
        return list(
            await asyncio.gather(*(self._send_one(application_key, *target) for target in targets))
        )

    async def _send_one(
        self, application_key: str, user: str, event: Message, except_session: str
    ) -> bool:
        """Whether the event was taken (a failure to send is logged and counted)."""
        try:
            await self._devices.to_user(application_key, user, event, except_session)
        except _SEND_ERRORS as exc:
            self._failed(event, user, exc)
            return False
        return True

    @staticmethod
    def _failed(event: Message, user_id: str, exc: BaseException) -> None:
        body = bodies.body_of(event)
        EVENTS_FAILED.labels(body).inc()
        log.warning("messaging_event_failed", body=body, user=user_id, error=str(exc))
