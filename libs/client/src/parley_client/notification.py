"""What push notifications are, as values: a device's provider token for managed push
(`PushToken`, `PushProvider`), and what a relayed push payload turned out to be
(`NotificationResult`, with a `CallNotificationResult` or a `MessageNotificationResult`), the
guide's NotificationResult, CallNotificationResult and MessageNotificationResult."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from parley.v1 import push_pb2 as push_pb
from parley_client.errors import ErrorType, ParleyError
from parley_protocol.errors import ErrorCode

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


class PushProvider(enum.Enum):
    """Who carries managed pushes to a device (the values are parley.v1.PushProvider's)."""

    FCM = push_pb.PUSH_PROVIDER_FCM  # Firebase Cloud Messaging (HTTP v1)
    APNS = push_pb.PUSH_PROVIDER_APNS  # Apple Push Notification service
    WEB_PUSH = push_pb.PUSH_PROVIDER_WEB_PUSH  # Web Push (RFC 8030), with VAPID

    @property
    def wire(self) -> push_pb.PushProvider:
        return self.value

    @classmethod
    def from_wire(cls, value: int) -> PushProvider | None:
        """The provider a reply names; None for none (or one this client does not know)."""
        try:
            return cls(value)
        except ValueError:
            return None


@dataclass(frozen=True)
class PushToken:
    """A device's address at its push provider, for managed push: the FCM registration token,
    the APNs device token (hex), or the Web Push subscription (compact JSON). Make one with
    `PushToken.fcm(...)`, `PushToken.apns(...)` or `PushToken.web_push(...)`; constructing one
    directly checks the same rules. ParleyError INVALID_ARGUMENT for a token the provider
    cannot have given, TypeError for a value of the wrong type."""

    provider: PushProvider
    token: str

    def __post_init__(self) -> None:
        if not isinstance(self.provider, PushProvider):
            raise TypeError(f"provider must be a PushProvider, not {self.provider!r}")
        if not isinstance(self.token, str):
            raise TypeError(f"a push token is a str, not {type(self.token).__name__}")
        if not self.token or self.token != self.token.strip():
            raise _invalid(f"the {self.provider.name} token is empty or has surrounding spaces")
        if self.provider is PushProvider.APNS and not _HEX.fullmatch(self.token):
            raise _invalid("an APNs device token is an even number of hex digits")
        if self.provider is PushProvider.WEB_PUSH:
            _check_subscription(_subscription_of(self.token))

    @classmethod
    def fcm(cls, token: str) -> PushToken:
        """An FCM registration token, as the Firebase SDK gives it."""
        return cls(PushProvider.FCM, token)

    @classmethod
    def apns(cls, device_token_hex: str | bytes) -> PushToken:
        """An APNs device token: hex digits (either case), or the token's raw bytes."""
        if isinstance(device_token_hex, bytes | bytearray):
            return cls(PushProvider.APNS, bytes(device_token_hex).hex())
        if not isinstance(device_token_hex, str):
            raise TypeError(
                f"an APNs device token is hex text or bytes, not {type(device_token_hex).__name__}"
            )
        return cls(PushProvider.APNS, device_token_hex.lower())

    @classmethod
    def web_push(cls, subscription: Mapping[str, object] | str) -> PushToken:
        """A Web Push subscription, as `PushSubscription.toJSON()` gives it (a mapping, or its
        JSON text): {"endpoint": "https://...", "keys": {"p256dh": ..., "auth": ...}}."""
        if isinstance(subscription, str):
            value: object = _subscription_of(subscription)
        elif isinstance(subscription, Mapping):
            value = dict(subscription)
        else:
            raise TypeError(
                "a Web Push subscription is a mapping or its JSON text, not "
                f"{type(subscription).__name__}"
            )
        _check_subscription(value)
        try:
            text = json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise _invalid(f"the Web Push subscription is not JSON: {exc}") from None
        return cls(PushProvider.WEB_PUSH, text)


@dataclass(frozen=True)
class CallNotificationResult:
    """A call that waited for this user when the push was sent."""

    call_id: str
    remote_user_id: str  # the caller
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    is_timed_out: bool = False  # it rang out (or was never answered in time)
    is_call_canceled: bool = False  # the caller hung up before it was answered
    is_video_offered: bool = False


@dataclass(frozen=True)
class MessageNotificationResult:
    """A message that waited for this user when the push was sent."""

    message_id: str
    sender_id: str


@dataclass(frozen=True)
class NotificationResult:
    """What a relayed push payload is about (`client.relay_remote_push_notification_payload`).

    `is_valid` is False for a payload the service refused: forged, expired, another user's or
    application's, or malformed; `error` says which. With `is_valid` True, `error` is set only
    when the call could not be claimed for a reason other than a lost connection (its flags
    then come from the payload's times)."""

    is_valid: bool
    is_call: bool = False
    is_message: bool = False
    call_result: CallNotificationResult | None = None
    message_result: MessageNotificationResult | None = None
    error: ParleyError | None = None

    @classmethod
    def invalid(cls, error: ParleyError) -> NotificationResult:
        return cls(is_valid=False, error=error)


def _invalid(reason: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, reason, ErrorType.OTHER, "token")


def _subscription_of(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        raise _invalid("the Web Push subscription is not JSON") from None


def _check_subscription(value: object) -> None:
    if not isinstance(value, dict):
        raise _invalid("a Web Push subscription is a JSON object")
    endpoint = value.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        raise _invalid('a Web Push subscription needs its "endpoint", an https URL')
    keys = value.get("keys")
    if not isinstance(keys, dict) or not all(
        isinstance(keys.get(name), str) and keys[name] for name in ("p256dh", "auth")
    ):
        raise _invalid('a Web Push subscription needs "keys" with "p256dh" and "auth"')
