"""The push service's requests: devices' registrations and relayed payloads (routed client
bodies, for a verified caller), and Notify from the calls and messaging services.

register_push_data / unregister_push_data:       app-server push data of the caller's device
register_managed_push / unregister_managed_push: its provider token (managed push)
relay_push_payload: what a payload the device got by push is for (signed, not expired, to it)
notify:             users with no online device: a managed push job for each device with a
                    provider token, a push pair (push data + signed payload) for each other
                    device with push data
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from parley.v1 import push_pb2
from parley_protocol import subjects
from parley_protocol.clock import Clock, now_ms
from parley_protocol.errors import ErrorCode, ParleyError, code_name
from parley_protocol.validation import validate_push_data, validate_user_id
from parley_push import store
from parley_push.jobs import JobQueue
from parley_push.metrics import NOTIFIES_BY, PAIRS_BY, REGISTRATIONS, RELAYS
from parley_push.payloads import PayloadSigner
from parley_push.settings import PushSettings
from parley_push.tokens import check_token, provider_name
from parley_service.batches import Batcher
from parley_service.bus import Bus
from parley_service.client_requests import Caller
from parley_service.logs import get_logger

log = get_logger("parley.push.handlers")

Db = store.Db
# Concurrent Notify requests' device lookups, one query a batch (app.py makes it).
Lookups = Batcher[store.Recipients, list[store.DeviceRow]]

# Users one Notify may name (a message's recipients, a call's callee).
MAX_NOTIFY_USERS = 100


def declare_endpoints(bus: Bus, handlers: PushHandlers) -> None:
    bus.client_endpoint(push_pb2.RegisterPushData, handlers.register_push_data)
    bus.client_endpoint(push_pb2.UnregisterPushData, handlers.unregister_push_data)
    bus.client_endpoint(push_pb2.RegisterManagedPush, handlers.register_managed_push)
    bus.client_endpoint(push_pb2.UnregisterManagedPush, handlers.unregister_managed_push)
    bus.client_endpoint(push_pb2.RelayPushPayload, handlers.relay_push_payload)
    bus.endpoint(subjects.PUSH_NOTIFY, push_pb2.NotifyRequest, handlers.notify, subjects.PUSH_QUEUE)


class PushHandlers:
    def __init__(
        self,
        settings: PushSettings,
        db: Db,
        lookups: Lookups,
        signer: PayloadSigner,
        jobs: JobQueue,
        clock: Clock,
    ) -> None:
        self._db = db
        self._lookups = lookups
        self._signer = signer
        self._jobs = jobs
        self._clock = clock
        self._call_grace_ms = int(settings.push_call_payload_grace_seconds * 1000)
        self._message_ttl_ms = int(settings.push_message_payload_ttl_seconds * 1000)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.time(), UTC)

    # registrations ---------------------------------------------------------------------

    async def _registered(self, caller: Caller) -> push_pb2.PushRegistered:
        row = await store.device(
            self._db, caller.application_key, caller.user_id, caller.instance_id
        )
        return push_pb2.PushRegistered(
            push_data=row is not None and row.push_data is not None,
            managed_provider=_provider((row.provider or 0) if row is not None else 0),
        )

    async def register_push_data(
        self, caller: Caller, request: push_pb2.RegisterPushData
    ) -> push_pb2.PushRegistered:
        data = validate_push_data(request.push_data)
        await store.set_push_data(
            self._db, caller.application_key, caller.user_id, caller.instance_id, data, self._now()
        )
        REGISTRATIONS.labels("push_data", "set").inc()
        return await self._registered(caller)

    async def unregister_push_data(
        self, caller: Caller, request: push_pb2.UnregisterPushData
    ) -> push_pb2.PushRegistered:
        await store.set_push_data(
            self._db, caller.application_key, caller.user_id, caller.instance_id, None, self._now()
        )
        REGISTRATIONS.labels("push_data", "clear").inc()
        return await self._registered(caller)

    async def register_managed_push(
        self, caller: Caller, request: push_pb2.RegisterManagedPush
    ) -> push_pb2.PushRegistered:
        token = check_token(request.provider, request.token)
        await store.set_managed(
            self._db,
            caller.application_key,
            caller.user_id,
            caller.instance_id,
            request.provider,
            token,
            self._now(),
        )
        REGISTRATIONS.labels("managed", "set").inc()
        log.info(
            "managed_push_registered",
            app=caller.application_key,
            user=caller.user_id,
            provider=provider_name(request.provider),
        )
        return await self._registered(caller)

    async def unregister_managed_push(
        self, caller: Caller, request: push_pb2.UnregisterManagedPush
    ) -> push_pb2.PushRegistered:
        await store.set_managed(
            self._db,
            caller.application_key,
            caller.user_id,
            caller.instance_id,
            None,
            None,
            self._now(),
        )
        REGISTRATIONS.labels("managed", "clear").inc()
        return await self._registered(caller)

    # relay -----------------------------------------------------------------------------

    async def relay_push_payload(
        self, caller: Caller, request: push_pb2.RelayPushPayload
    ) -> push_pb2.PushPayloadRelayed:
        try:
            body = self._signer.open(request.payload, now_ms(self._clock))
            if (
                body.application_key != caller.application_key
                or body.recipient_user_id != caller.user_id
            ):
                raise ParleyError(
                    ErrorCode.ERROR_CODE_PERMISSION_DENIED,
                    "the push payload is addressed to another user",
                    "payload",
                )
        except ParleyError as exc:
            RELAYS.labels(code_name(exc.code)).inc()
            log.info(
                "payload_refused", app=caller.application_key, user=caller.user_id, why=exc.reason
            )
            raise
        relayed = push_pb2.PushPayloadRelayed(expires_at_ms=body.expires_at_ms)
        if body.HasField("call"):
            relayed.call.CopyFrom(body.call)
            RELAYS.labels("call").inc()
        else:
            relayed.message.CopyFrom(body.message)
            RELAYS.labels("message").inc()
        return relayed

    # notify ----------------------------------------------------------------------------

    def _payload(self, request: push_pb2.NotifyRequest, recipient: str) -> tuple[str, int]:
        body = push_pb2.PushPayloadBody(
            application_key=request.application_key, recipient_user_id=recipient
        )
        if request.HasField("call"):
            body.call.CopyFrom(request.call)
            body.expires_at_ms = request.call.ring_until_ms + self._call_grace_ms
        else:
            body.message.CopyFrom(request.message)
            body.expires_at_ms = request.message.timestamp_ms + self._message_ttl_ms
        return self._signer.sign(body), body.expires_at_ms

    async def notify(self, request: push_pb2.NotifyRequest) -> push_pb2.NotifyReply:
        kind = request.WhichOneof("content")
        if kind is None:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "a notify names a call or a message"
            )
        if not request.application_key or not 0 < len(request.recipient_ids) <= MAX_NOTIFY_USERS:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                f"a notify names an application and 1 to {MAX_NOTIFY_USERS} users",
            )
        recipients = list(dict.fromkeys(validate_user_id(u) for u in request.recipient_ids))
        kind_name = "call" if kind == "call" else "message"
        collapse_id = request.call.call_id if kind == "call" else request.message.message_id
        devices = await self._lookups.submit(
            store.Recipients(request.application_key, tuple(recipients))
        )
        payloads = {user: self._payload(request, user) for user in recipients}
        reply = push_pb2.NotifyReply()
        by_user = {user: reply.recipients.add(recipient_id=user) for user in recipients}
        jobs: list[push_pb2.PushJob] = []
        enqueued_at = now_ms(self._clock)
        for device in devices:
            payload, expires_at = payloads[device.user_id]
            entry = by_user[device.user_id]
            if device.provider is not None and device.token is not None:
                entry.managed += 1
                if request.pairs_only:
                    continue
                jobs.append(
                    push_pb2.PushJob(
                        application_key=request.application_key,
                        recipient_user_id=device.user_id,
                        instance_id=device.instance_id,
                        provider=_provider(device.provider),
                        token=device.token,
                        payload=payload,
                        kind=kind_name,
                        collapse_id=collapse_id,
                        enqueued_at_ms=enqueued_at,
                        expires_at_ms=expires_at,
                    )
                )
            elif device.push_data is not None:
                entry.push_pairs.add(push_data=device.push_data, push_payload=payload.encode())
        await self._jobs.publish(jobs)
        NOTIFIES_BY(kind_name).inc()
        PAIRS_BY(kind_name).inc(sum(len(r.push_pairs) for r in reply.recipients))
        log.info(
            "notified",
            app=request.application_key,
            kind=kind_name,
            id=collapse_id,
            users=len(recipients),
            managed=len(jobs),
            pairs=sum(len(r.push_pairs) for r in reply.recipients),
        )
        return reply


def _provider(number: int) -> push_pb2.PushProvider:
    """A stored provider number as the proto's enum type."""
    return cast(push_pb2.PushProvider, number)
