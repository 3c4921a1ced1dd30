"""The messaging service's client requests, each a routed body answered for a verified
caller.

send_message:   validate, check every recipient ever registered (auth), commit (grouped
                with concurrent sends), then MessageIncoming to the recipients' devices and
                MessageSent to the sender's; the reply lists the recipients with no device
                online. A retried send (same id, same sender) is answered from what was
                stored, and tells the stored message only if it was not told yet; the
                same id from another sender is PERMISSION_DENIED.
ack_messages:   this device instance has these messages (grouped commits); a recipient's
                first device to acknowledge makes a message delivered (MessageDelivered
                to the sender's devices, once per recipient).
fetch_messages: the messages to the caller's user this device instance has not
                acknowledged, within the retention time, oldest first.
mark_read:      the caller's user read these messages (MessageRead to the sender's devices,
                once per reader; a message read is delivered too).
send_typing:    TypingChanged to the other user's devices (not stored).

Events that were taken by the device events are then marked told (grouped commits of their
own); what is not marked is told again by the sweeper (redeliver.py).

Identity comes from the Caller only: the sender of a message, the user whose messages are
fetched, acknowledged or read, the device instance that acknowledges. Acknowledgements and
reads of ids that are not messages to the caller's user (another user's, another
application's, unknown, expired, or the caller's own sent messages) are left out, not
refused: the reply's count says how many counted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from parley.v1 import common_pb2, messaging_pb2, push_pb2
from parley_messaging import commits, records, store
from parley_messaging.commits import (
    NewMessage,
    Receipt,
    ReceiptOutcome,
    ReceiptRequest,
    Stored,
    Told,
    ToldMarks,
)
from parley_messaging.events import MessageEvents
from parley_messaging.metrics import (
    DELIVERED,
    FETCHED,
    FETCHES,
    MESSAGES_ACCEPTED,
    MESSAGES_FAILED,
    MESSAGES_REFUSED,
    READ,
)
from parley_messaging.online import OnlineUsers, offline_among
from parley_messaging.registered import RegisteredUsers
from parley_messaging.settings import MessagingSettings
from parley_protocol import subjects
from parley_protocol.clock import Clock, now_ms
from parley_protocol.errors import ErrorCode, ParleyError, code_name
from parley_protocol.validation import (
    validate_headers,
    validate_message_text,
    validate_recipients,
    validate_user_id,
)
from parley_service import db
from parley_service.app_label import app_label
from parley_service.batches import Batcher
from parley_service.bus import Bus
from parley_service.client_requests import Caller
from parley_service.logs import get_logger

log = get_logger("parley.messaging.handlers")

# How long a send waits for the push service when recipients have no device online.
NOTIFY_TIMEOUT_SECONDS = 2.0

MessageWriter = Batcher[NewMessage, Stored | ParleyError]
ReceiptWriter = Batcher[ReceiptRequest, ReceiptOutcome]
ToldWriter = Batcher[ToldMarks, None]


def declare_endpoints(bus: Bus, handlers: MessagingHandlers) -> None:
    # A send is new work, shed first under overload: the acknowledgements that make the
    # messages already stored delivered keep getting through.
    bus.client_endpoint(messaging_pb2.SendMessage, handlers.send_message, sheds_first=True)
    bus.client_endpoint(messaging_pb2.AckMessages, handlers.ack_messages)
    bus.client_endpoint(messaging_pb2.FetchMessages, handlers.fetch_messages)
    bus.client_endpoint(messaging_pb2.MarkRead, handlers.mark_read)
    bus.client_endpoint(messaging_pb2.SendTyping, handlers.send_typing)


class MessagingHandlers:
    def __init__(
        self,
        settings: MessagingSettings,
        pool: store.Db,
        messages: MessageWriter,
        acks: ReceiptWriter,
        reads: ReceiptWriter,
        told: ToldWriter,
        registered: RegisteredUsers,
        online: OnlineUsers,
        events: MessageEvents,
        bus: Bus,
        clock: Clock,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._messages = messages
        self._acks = acks
        self._reads = reads
        self._told = told
        self._registered = registered
        self._online = online
        self._events = events
        self._clock = clock
        self._max_recipients = settings.message_max_recipients
        self._max_text_bytes = settings.message_max_text_bytes
        self._retention_ms = int(settings.retention_seconds * 1000)
        self._fetch_limit = settings.message_fetch_limit

    # send -----------------------------------------------------------------------------

    async def send_message(
        self, caller: Caller, request: messaging_pb2.SendMessage
    ) -> messaging_pb2.MessageAccepted:
        try:
            return await self._send(caller, request)
        except ParleyError as err:
            _failed(caller.application_key, err.code_name)
            raise
        except Exception as exc:
            unavailable = ErrorCode.ERROR_CODE_UNAVAILABLE
            _failed(
                caller.application_key,
                code_name(unavailable if db.is_unavailable(exc) else ErrorCode.ERROR_CODE_INTERNAL),
            )
            raise

    async def _send(
        self, caller: Caller, request: messaging_pb2.SendMessage
    ) -> messaging_pb2.MessageAccepted:
        app = caller.application_key
        if not request.HasField("message"):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "a SendMessage carries a message", "message"
            )
        given = request.message
        message_id = records.message_uuid(given.message_id)
        recipients = validate_recipients(list(given.recipient_ids), self._max_recipients)
        text = validate_message_text(given.text, self._max_text_bytes)
        headers = validate_headers(dict(given.headers))
        message = messaging_pb2.Message(
            message_id=given.message_id,
            sender_id=caller.user_id,
            recipient_ids=recipients,
            text=text,
            headers=headers,
            timestamp_ms=now_ms(self._clock),
        )
        records.require_fits_frame(message)
        await self._registered.require(app, recipients)

        stored = await self._messages.submit(
            NewMessage(
                application_key=app,
                message_id=message_id,
                sender_id=caller.user_id,
                recipient_ids=tuple(recipients),
                text=text,
                headers=headers,
                sent_at_ms=message.timestamp_ms,
            )
        )
        if isinstance(stored, ParleyError):
            raise stored
        if stored.sender_id != caller.user_id:
            raise ParleyError(
                ErrorCode.ERROR_CODE_PERMISSION_DENIED,
                "this message id belongs to another message",
                "message_id",
            )
        if stored.created:
            MESSAGES_ACCEPTED.labels(app_label(app)).inc()
            log.info(
                "message_accepted",
                app=app,
                message=given.message_id,
                sender=caller.user_id,
                recipients=len(recipients),
            )
            offline = await self._tell(app, stored.seq, message, recipients, caller.session_id)
        elif not stored.told:
            # A retry of a message whose events were not all taken: tell what was stored.
            log.info("message_send_repeated", app=app, message=given.message_id, told=False)
            found = (await store.messages_by_seq(self._pool, [stored.seq])).get(stored.seq)
            if found is not None:
                recipients = found.message.recipient_ids
                message = records.message_of(found.message)
            told = message if found else None
            offline = await self._tell(app, stored.seq, told, recipients, caller.session_id)
        else:
            # A retry: the same reply, nothing stored or told twice.
            log.info("message_send_repeated", app=app, message=given.message_id, told=True)
            offline = await self._offline(app, recipients)
        pairs = await self._push(app, message, stored.sent_at_ms, offline, not stored.created)
        return messaging_pb2.MessageAccepted(
            message_id=given.message_id,
            timestamp_ms=stored.sent_at_ms,
            offline=[
                messaging_pb2.RecipientPush(recipient_id=user, push_pairs=pairs.get(user, ()))
                for user in offline
            ],
        )

    async def _push(
        self,
        application_key: str,
        message: messaging_pb2.Message,
        sent_at_ms: int,
        offline: Sequence[str],
        repeated: bool,
    ) -> dict[str, list[common_pb2.PushPair]]:
        """Recipients with no device online: the push service pushes to their devices with
        managed push (not again for a repeated send), and the pairs of the others are for the
        sender's app. None when the push service cannot be asked (the message is stored and
        will be fetched all the same)."""
        if not offline:
            return {}
        request = push_pb2.NotifyRequest(
            application_key=application_key,
            recipient_ids=offline,
            message=push_pb2.MessagePush(
                message_id=message.message_id,
                sender_id=message.sender_id,
                timestamp_ms=sent_at_ms,
            ),
            pairs_only=repeated,
        )
        try:
            reply = await self._bus.request(
                subjects.PUSH_NOTIFY, request, push_pb2.NotifyReply, NOTIFY_TIMEOUT_SECONDS
            )
        except ParleyError as exc:
            log.warning(
                "push_notify_failed",
                app=application_key,
                message=message.message_id,
                error=exc.reason,
            )
            return {}
        return {r.recipient_id: list(r.push_pairs) for r in reply.recipients}

    async def _tell(
        self,
        application_key: str,
        seq: int,
        message: messaging_pb2.Message | None,
        recipients: Sequence[str],
        sending_session: str,
    ) -> list[str]:
        """Tell the message's recipients, and the sender's other devices (the sending
        session has its reply); once all took it, mark it told. Presence is asked once, for
        the recipients and the sender, while the recipients are told. Returns the
        recipients with no device online for messaging (all of them when presence cannot
        say: the app may push to them)."""
        users = [*recipients, message.sender_id] if message is not None else list(recipients)
        asked = self._online.ask(application_key, users)
        try:
            incoming = (
                await self._events.incoming(application_key, message, message.recipient_ids)
                if message is not None
                else []
            )
        except BaseException:
            asked.cancel()
            raise
        online = await self._online.answer(application_key, asked)
        offline = offline_among(online, recipients)
        if message is None:
            return offline
        # MessageSent to the sender's other devices online, if it has any; when presence
        # cannot say, published all the same.
        others = online is None or bool(
            online.get(message.sender_id, frozenset()) - {sending_session}
        )
        sent = (
            await self._events.sent(application_key, message, sending_session) if others else True
        )
        if all(incoming) and sent:
            await self._mark([Told(commits.MESSAGE, seq)])
        return offline

    async def _mark(self, marks: Sequence[Told]) -> None:
        """Record that these events were taken. A failure is only logged: the sweeper tells
        them again (devices drop what they have)."""
        if not marks:
            return
        try:
            await self._told.submit(ToldMarks(tuple(marks), now_ms(self._clock)))
        except Exception as exc:
            log.warning("told_mark_failed", marks=len(marks), error=repr(exc))

    async def _offline(self, application_key: str, recipients: Sequence[str]) -> list[str]:
        """The recipients with no device online for messaging (the app may push to them)."""
        return await self._online.offline(application_key, recipients)

    # acknowledge, read ----------------------------------------------------------------

    async def ack_messages(
        self, caller: Caller, request: messaging_pb2.AckMessages
    ) -> messaging_pb2.MessagesAcked:
        outcome = await self._receipts(self._acks, caller, request.message_ids)
        await self._delivered(caller.application_key, outcome)
        return messaging_pb2.MessagesAcked(count=outcome.count)

    async def mark_read(
        self, caller: Caller, request: messaging_pb2.MarkRead
    ) -> messaging_pb2.MessagesAcked:
        outcome = await self._receipts(self._reads, caller, request.message_ids)
        app = caller.application_key
        if outcome.read:
            READ.inc(len(outcome.read))
        if outcome.delivered:
            DELIVERED.labels(app_label(app)).inc(len(outcome.delivered))
        delivered, read = await asyncio.gather(
            self._events.delivered(app, outcome.delivered), self._events.read(app, outcome.read)
        )
        await self._mark(
            _told(commits.DELIVERED, outcome.delivered, delivered)
            + _told(commits.READ, outcome.read, read)
        )
        return messaging_pb2.MessagesAcked(count=outcome.count)

    async def _receipts(
        self, writer: ReceiptWriter, caller: Caller, message_ids: Sequence[str]
    ) -> ReceiptOutcome:
        instance_id = _instance_of(caller)
        ids = records.validate_message_ids(message_ids)
        if not ids:
            return ReceiptOutcome(0)
        now = now_ms(self._clock)
        return await writer.submit(
            ReceiptRequest(
                application_key=caller.application_key,
                user_id=caller.user_id,
                instance_id=instance_id,
                message_ids=tuple(ids),
                at_ms=now,
                cutoff_ms=now - self._retention_ms,
            )
        )

    async def _delivered(self, application_key: str, outcome: ReceiptOutcome) -> None:
        if outcome.delivered:
            DELIVERED.labels(app_label(application_key)).inc(len(outcome.delivered))
            taken = await self._events.delivered(application_key, outcome.delivered)
            await self._mark(_told(commits.DELIVERED, outcome.delivered, taken))

    # fetch ----------------------------------------------------------------------------

    async def fetch_messages(
        self, caller: Caller, request: messaging_pb2.FetchMessages
    ) -> messaging_pb2.MessageBatch:
        instance_id = _instance_of(caller)
        limit = min(request.limit or self._fetch_limit, self._fetch_limit)
        cutoff = now_ms(self._clock) - self._retention_ms
        found = await store.fetch_unacknowledged(
            self._pool,
            caller.application_key,
            caller.user_id,
            instance_id,
            records.to_datetime(cutoff),
            limit + 1,
        )
        batch = records.fill_batch(
            [records.message_of(row) for row in found[:limit]], more=len(found) > limit
        )
        FETCHES.inc()
        FETCHED.inc(len(batch.messages))
        return batch

    # typing ---------------------------------------------------------------------------

    async def send_typing(
        self, caller: Caller, request: messaging_pb2.SendTyping
    ) -> messaging_pb2.MessagesAcked:
        recipient = validate_user_id(request.recipient_id, "recipient_id")
        await self._events.typing(caller.application_key, recipient, caller.user_id, request.typing)
        return messaging_pb2.MessagesAcked(count=1)


def _failed(application_key: str, code: str) -> None:
    """A send answered with an error: counted by application and by code."""
    MESSAGES_FAILED.labels(app_label(application_key)).inc()
    MESSAGES_REFUSED.labels(code).inc()


def _told(kind: str, receipts: Sequence[Receipt], taken: Sequence[bool]) -> list[Told]:
    return [Told(kind, r.seq, r.user_id) for r, ok in zip(receipts, taken, strict=True) if ok]


def _instance_of(caller: Caller) -> uuid.UUID:
    """The caller's device instance (auth's id of the registration its token came from)."""
    try:
        return uuid.UUID(caller.instance_id)
    except ValueError:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            "the session names no device instance; sign in with a registered device's token",
            "caller",
        ) from None
