"""What every push provider sender shares: the notification to deliver, the outcome of one
send, the sender protocol, and the reading of the parts of an HTTP answer all providers use
alike (Retry-After, transport failures, status classes).

A sender never raises for provider or network trouble: each send returns an `Outcome`,
which the job worker turns into a delivery, a deleted token, a retry or a logged failure.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol


@dataclass(frozen=True)
class Notification:
    """One push to one device token.

    `payload` is the signed Parley payload (ASCII), delivered as the data key "parley";
    `collapse_id` (the call or message ID) lets the provider replace an undelivered push
    of the same subject (none when empty); `ttl_seconds` is how long the provider may hold it (0: deliver
    now or never).
    """

    kind: str
    payload: str
    collapse_id: str
    ttl_seconds: int

    @property
    def is_call(self) -> bool:
        return self.kind == "call"


class OutcomeKind(enum.Enum):
    SENT = "sent"
    DEAD_TOKEN = "dead_token"  # the token will never work again: forget it
    RETRY = "retry"  # the provider or the network failed for now: try again later
    FAILED = "failed"  # refused for a reason retrying will not fix (credentials, request)


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    reason: str = ""  # the provider's words, for logs
    retry_after: float | None = None  # seconds, when the provider said (Retry-After)
    status: int = 0  # the HTTP status seen; 0: no answer (connection error, timeout)


class ProviderSender(Protocol):
    """Sends pushes through one provider with one set of credentials."""

    provider: str  # "fcm" | "apns" | "web_push" (metric label)

    async def send(self, token: str, notification: Notification) -> Outcome: ...

    async def close(self) -> None: ...


def sent(status: int, reason: str = "") -> Outcome:
    return Outcome(OutcomeKind.SENT, reason, status=status)


def dead(status: int, reason: str) -> Outcome:
    return Outcome(OutcomeKind.DEAD_TOKEN, reason, status=status)


def failed(status: int, reason: str) -> Outcome:
    return Outcome(OutcomeKind.FAILED, reason, status=status)


def retry(status: int, reason: str, retry_after: float | None = None) -> Outcome:
    return Outcome(OutcomeKind.RETRY, reason, retry_after=retry_after, status=status)


def is_retryable_status(status: int) -> bool:
    """429 (slow down) and every 5xx: the provider's trouble, not the request's."""
    return status == 429 or 500 <= status <= 599


def retry_or_failed(status: int, reason: str, retry_after: str | None) -> Outcome:
    """An answer that is neither sent nor a dead token: RETRY for the provider's trouble
    (after its Retry-After header, when given), FAILED for the request's."""
    if is_retryable_status(status):
        return retry(status, reason, retry_after_seconds(retry_after))
    return failed(status, reason)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 §10.2.3).

    None when absent or unreadable; a date in the past gives 0.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds == float("inf"):  # NaN, infinity
        return None
    return max(0.0, seconds)


def unreachable(error: BaseException) -> Outcome:
    """The outcome of a send that got no answer: a retry, with the error for the logs."""
    detail = str(error)
    name = type(error).__name__
    return retry(0, f"{name}: {detail}" if detail else name)


def short_id(value: str, limit: int) -> str:
    """`value` if it has at most `limit` URL-safe characters, else a stable digest of it
    (base64url of SHA-256, cut to `limit`) that stays the same for the same value."""
    if len(value) <= limit and value.isascii() and all(c.isalnum() or c in "-_" for c in value):
        return value
    digest = base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest())
    return digest.decode("ascii").rstrip("=")[:limit]


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    """Decodes base64url with or without padding (also accepts the standard alphabet,
    as some browsers' subscriptions do); ValueError on anything else."""
    cleaned = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    if not cleaned or any(not (c.isalnum() or c in "-_") for c in cleaned) or not cleaned.isascii():
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc
