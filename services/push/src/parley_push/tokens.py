"""Checks of a device's managed-push registration: a provider this deployment knows and a
token of that provider's shape. Each failure names the field and says why."""

from __future__ import annotations

import json
import re

from parley.v1 import push_pb2
from parley_protocol.errors import ErrorCode, ParleyError
from parley_push.providers.base import b64url_encode
from parley_push.providers.web_push import parse_subscription

MAX_TOKEN_CHARS = 4096
PROVIDER_NAMES: dict[int, str] = {
    int(push_pb2.PUSH_PROVIDER_FCM): "fcm",
    int(push_pb2.PUSH_PROVIDER_APNS): "apns",
    int(push_pb2.PUSH_PROVIDER_WEB_PUSH): "web_push",
}
_FCM = re.compile(r"[\x21-\x7e]+")
_HEX = re.compile(r"[0-9a-fA-F]+")


def provider_name(provider: int) -> str:
    """`fcm`, `apns` or `web_push`; INVALID_ARGUMENT for anything else."""
    name = PROVIDER_NAMES.get(provider)
    if name is None:
        raise _invalid("provider", f"unknown push provider {provider}: use FCM, APNS or WEB_PUSH")
    return name


def provider_of(name: str) -> int:
    for number, known in PROVIDER_NAMES.items():
        if known == name:
            return int(number)
    raise ValueError(f"unknown push provider {name!r}: use fcm, apns or web_push")


def check_token(provider: int, token: str) -> str:
    """The token as stored (APNs hex lowercased, a Web Push subscription as compact JSON)."""
    name = provider_name(provider)
    token = token.strip()
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise _invalid("token", f"a push token is 1 to {MAX_TOKEN_CHARS} characters")
    if name == "fcm":
        if not _FCM.fullmatch(token):
            raise _invalid("token", "an FCM registration token is printable ASCII, no spaces")
        return token
    if name == "apns":
        if not _HEX.fullmatch(token) or len(token) % 2 or not 64 <= len(token) <= 200:
            raise _invalid("token", "an APNs device token is 64 to 200 hexadecimal digits")
        return token.lower()
    return _subscription(token)


def _subscription(token: str) -> str:
    try:
        sub = parse_subscription(token)
    except ValueError as exc:
        raise _invalid("token", f"not a Web Push subscription: {exc}") from exc
    keys = {"p256dh": b64url_encode(sub.p256dh), "auth": b64url_encode(sub.auth)}
    return json.dumps({"endpoint": sub.endpoint, "keys": keys}, separators=(",", ":"))


def _invalid(field: str, reason: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, reason, field)
