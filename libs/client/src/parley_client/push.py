"""`PushClient`: this device's push registrations, and the relay of push payloads, a client
feature with no events of its own.

It keeps what this device wants registered with the push service: the push data of
app-server push (RegisterPushData, at most 1024 bytes) and the provider token of managed push
(RegisterManagedPush). Both requests are idempotent on the service, so on every connection
that was not resumed (the first one included) what is set is sent again; a change made while
the client is not connected is sent at the next connection, and so is one that failed for a
passing (NETWORK) reason. Other failures of those re-sends are logged.

`relay` hands a payload the device got by push back to the push service, which checks its
signature, expiry and addressee and says what it is for; `ParleyClient`'s
`relay_remote_push_notification_payload` builds on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from google.protobuf.message import Message as ProtoMessage

from parley.v1 import push_pb2 as push_pb
from parley_client.errors import ErrorType, ParleyError, terminated
from parley_client.features import Connected, Feature
from parley_client.notification import PushToken
from parley_protocol import validation
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError

# Refusals of a relayed payload that say the payload is no good (forged, expired, another
# user's or application's, malformed), rather than that it could not be checked now.
PAYLOAD_REFUSALS = frozenset(
    {
        ErrorCode.ERROR_CODE_INVALID_SIGNATURE,
        ErrorCode.ERROR_CODE_STALE_TIMESTAMP,
        ErrorCode.ERROR_CODE_PERMISSION_DENIED,
        ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
        ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
    }
)

T = TypeVar("T")


def passing(error: ParleyError) -> bool:
    """Whether `error` may pass by itself (lost connection, timeout, a service busy or down):
    what failed so is tried again later."""
    return error.type is ErrorType.NETWORK or error.error_code == ErrorCode.ERROR_CODE_RATE_LIMITED


def payload_bytes(payload: bytes | str) -> bytes:
    """A push payload as the service takes it: its bytes (text is the same, in UTF-8)."""
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    raise TypeError(f"a push payload is bytes or str, not {type(payload).__name__}")


@dataclass
class _Registration(Generic[T]):
    """One kind of registration this device wants: its value (None: none), whether the
    service has yet to hear of it (`pending`), and the session in which the service last
    confirmed it."""

    kind: str
    request: Callable[[T | None], ProtoMessage]
    value: T | None = None
    pending: bool = False
    confirmed_in: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def state(self) -> tuple[T | None, bool, str]:
        return self.value, self.pending, self.confirmed_in

    def restore(self, state: tuple[T | None, bool, str]) -> None:
        self.value, self.pending, self.confirmed_in = state


def _data_request(data: bytes | None) -> ProtoMessage:
    if data is None:
        return push_pb.UnregisterPushData()
    return push_pb.RegisterPushData(push_data=data)


def _managed_request(token: PushToken | None) -> ProtoMessage:
    if token is None:
        return push_pb.UnregisterManagedPush()
    return push_pb.RegisterManagedPush(provider=token.provider.wire, token=token.token)


class PushClient(Feature):
    """This device's push registrations (`client.register_push_notification_data(...)` and
    the others delegate here), and the relay of push payloads."""

    name = "push"
    bodies: frozenset[str] = frozenset()

    def __init__(
        self,
        *,
        connected: Callable[[], bool],
        session_id: Callable[[], str | None],
        stopped: Callable[[], bool],
    ) -> None:
        """`connected`: whether the client is connected now; `session_id`: its session;
        `stopped`: whether it was terminated."""
        self._connected = connected
        self._session_id = session_id
        self._stopped = stopped
        self._data: _Registration[bytes] = _Registration("push data", _data_request)
        self._managed: _Registration[PushToken] = _Registration("managed push", _managed_request)
        self._sync: asyncio.Task[None] | None = None

    # -- what is registered ----------------------------------------------------------------

    @property
    def push_data(self) -> bytes | None:
        """The push data this device wants registered (None: none)."""
        return self._data.value

    @property
    def managed_push_token(self) -> PushToken | None:
        """The provider token this device wants registered for managed push (None: none)."""
        return self._managed.value

    async def register_push_notification_data(self, data: bytes) -> None:
        """Register `data` (at most 1024 bytes, any content) as this device's push data: the
        app server gets it with a payload to push when a call or message waits for this user
        and no device of theirs is online. It replaces what was registered before.

        When the client is connected this returns once the service has it, and raises its
        refusal as ParleyError; a NETWORK-type failure is raised too, and the data is sent
        again at the next connection. When the client is not connected, the data is sent
        once it is and this returns at once. TypeError for data that is not bytes;
        ParleyError PAYLOAD_TOO_LARGE, and nothing kept, for more than 1024 bytes."""
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"push data is bytes, not {type(data).__name__}")
        try:
            validation.validate_push_data(bytes(data))
        except ProtocolError as exc:
            raise ParleyError.from_protocol(exc) from None
        await self._change(self._data, bytes(data))

    async def unregister_push_notification_data(self) -> None:
        """Forget this device's push data (as `register_push_notification_data` for when
        and how it reaches the service)."""
        await self._change(self._data, None)

    async def register_managed_push(self, token: PushToken) -> None:
        """Have the push service push to this device through its provider, with `token`
        (replacing the one registered before). The client must announce managed push:
        `set_support_managed_push(True)` before `start()`, else ParleyError
        CAPABILITY_NOT_ANNOUNCED (of type CAPABILITY). Sent and answered as
        `register_push_notification_data`."""
        if not isinstance(token, PushToken):
            raise TypeError(f"register_managed_push takes a PushToken, not {token!r}")
        if not self.link.capabilities.managed_push:
            raise ParleyError(
                ErrorCode.ERROR_CODE_CAPABILITY_NOT_ANNOUNCED,
                "managed push is not supported: call set_support_managed_push(True) before start()",
                ErrorType.CAPABILITY,
                "capabilities",
            )
        await self._change(self._managed, token)

    async def unregister_managed_push(self) -> None:
        """Forget this device's provider token (no more managed pushes to it)."""
        await self._change(self._managed, None)

    # -- relay -----------------------------------------------------------------------------

    async def relay(self, payload: bytes | str) -> push_pb.PushPayloadRelayed | ParleyError:
        """Ask the push service what `payload` (received by push) is for. Returns its answer,
        or the ParleyError saying the payload is no good (forged, expired, another user's or
        application's, malformed); raises the other failures (NETWORK-type ones: not
        connected, timed out, the service unavailable)."""
        data = payload_bytes(payload)
        if self._stopped():
            raise terminated()
        if not data:
            return ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                "the push payload is empty",
                ErrorType.OTHER,
                "payload",
            )
        try:
            return await self.link.request(
                push_pb.RelayPushPayload(payload=data), push_pb.PushPayloadRelayed
            )
        except ParleyError as exc:
            if exc.error_code in PAYLOAD_REFUSALS:
                return exc
            raise

    # -- Feature -----------------------------------------------------------------------------

    async def on_connected(self, connected: Connected) -> None:
        if not connected.resumed:  # a new session: tell the service again what is set
            for registration in self._registrations():
                if (
                    registration.value is not None
                    and registration.confirmed_in != connected.session_id
                ):
                    registration.pending = True
        if any(registration.pending for registration in self._registrations()):
            await self._stop_sync()
            self._sync = asyncio.get_running_loop().create_task(
                self._send_pending(), name="parley push registrations"
            )

    async def on_disconnected(self, reason: ParleyError) -> None:
        await self._stop_sync()

    # -- internals ---------------------------------------------------------------------------

    def _registrations(self) -> tuple[_Registration[bytes], _Registration[PushToken]]:
        return self._data, self._managed

    async def _change(self, registration: _Registration[T], value: T | None) -> None:
        if self._stopped():
            raise terminated()
        log = self.link.log
        async with registration.lock:
            before = registration.state()
            registration.value, registration.pending = value, True
            what = "unregistering" if value is None else "registering"
            if not self._connected():
                log.info(f"{what} {registration.kind} once the client is connected")
                return
            try:
                await self._send(registration)
            except ParleyError as exc:
                if not passing(exc):
                    registration.restore(before)  # the service keeps what it had
                    log.warning(f"{what} {registration.kind} was refused: {exc}")
                else:
                    log.info(f"{what} {registration.kind} failed ({exc}); sent again later")
                raise

    async def _send(self, registration: _Registration[T]) -> None:
        """Send what `registration` wants now (its lock held); ParleyError if it failed."""
        await self.link.request(registration.request(registration.value), push_pb.PushRegistered)
        registration.pending = False
        registration.confirmed_in = self._session_id() or ""

    async def _send_pending(self) -> None:
        await self._resend(self._data, can=True)
        await self._resend(self._managed, can=self.link.capabilities.managed_push)

    async def _resend(self, registration: _Registration[T], can: bool) -> None:
        """Send `registration` if the service has yet to hear of it; `can`: whether this
        client may register it (managed push needs its capability)."""
        log = self.link.log
        async with registration.lock:
            if not registration.pending:
                return
            if registration.value is not None and not can:
                registration.pending = False
                log.warning(
                    f"{registration.kind} was not registered: it is not supported "
                    "(set_support_managed_push(True) before start())"
                )
                return
            try:
                await self._send(registration)
            except ParleyError as exc:
                if passing(exc):
                    log.info(f"{registration.kind} not sent ({exc}); sent at the next connection")
                else:
                    registration.pending = False
                    log.warning(f"{registration.kind} was refused: {exc}")
            else:
                log.debug(f"{registration.kind} sent")

    async def _stop_sync(self) -> None:
        sync, self._sync = self._sync, None
        if sync is not None and sync is not asyncio.current_task():
            sync.cancel()
            await asyncio.gather(sync, return_exceptions=True)
