"""Settings of the messaging service: the shared ones plus the limits of a message, the
retention time and its purge, the batching of commits, and the redelivery sweeper."""

from __future__ import annotations

import dataclasses

from parley_protocol import framing
from parley_protocol.validation import DEFAULT_MAX_RECIPIENTS, DEFAULT_MAX_TEXT_BYTES
from parley_service.presence import MAX_QUERY_USERS
from parley_service.settings import ServiceSettings, SettingsError, positive


@dataclasses.dataclass(frozen=True)
class MessagingSettings(ServiceSettings):
    service_name: str = "messaging"
    # Recipients of one message (presence is read for all of them in one query).
    message_max_recipients: int = DEFAULT_MAX_RECIPIENTS
    # Bytes of UTF-8 in a message's text. A whole message must also fit one frame
    # (framing.MAX_FRAME_BYTES) as the event that carries it; a send that does not is refused.
    message_max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES
    # Messages are kept (and fetched) this many days after they were accepted.
    message_retention_days: int = 30
    # How often each replica deletes the messages past the retention time.
    message_purge_seconds: float = 3600.0
    # Requests written in one transaction at most (sends, acknowledgements, reads: each kind
    # has its own writer).
    message_batch_max: int = 256
    # How long a writer waits for more requests after the first of a batch. 0: no wait; the
    # requests that arrive while a commit runs make up the next batch.
    message_batch_window_seconds: float = 0.0
    # A batch not committed within this time fails its requests with UNAVAILABLE (retry:
    # sends are idempotent), before the gateway's own timeout of the request.
    message_commit_timeout_seconds: float = 5.0
    # Messages in one FetchMessages reply: the default and the most a device may ask for.
    message_fetch_limit: int = 100
    # Users known to have registered a device, remembered per replica (least recently
    # used go first); 0 asks auth every time.
    message_registered_cache_size: int = 100_000
    # How often each replica's sweeper tells again what was committed but not told.
    message_redeliver_seconds: float = 2.0
    # Told again when still not told (or not delivered) this long after it was accepted
    # (told, or last told again): the events of a send in flight are not doubled. An
    # undelivered message is told again after this, then after twice as long, and so on.
    message_redeliver_after_seconds: float = 10.0
    # Undelivered messages are told again to online recipients until they are this old;
    # older ones wait for the recipient's fetch.
    message_redeliver_max_age_seconds: float = 600.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.message_max_recipients <= MAX_QUERY_USERS:
            raise SettingsError(
                f"PARLEY_MESSAGE_MAX_RECIPIENTS must be 1 to {MAX_QUERY_USERS}, not "
                f"{self.message_max_recipients}"
            )
        if not 0 <= self.message_max_text_bytes <= framing.MAX_FRAME_BYTES:
            raise SettingsError(
                f"PARLEY_MESSAGE_MAX_TEXT_BYTES must be 0 to {framing.MAX_FRAME_BYTES} (a "
                f"frame), not {self.message_max_text_bytes}"
            )
        if not 1 <= self.message_retention_days <= 3650:
            raise SettingsError(
                "PARLEY_MESSAGE_RETENTION_DAYS must be 1 to 3650, not "
                f"{self.message_retention_days}"
            )
        positive("PARLEY_MESSAGE_PURGE_SECONDS", self.message_purge_seconds)
        if not 1 <= self.message_batch_max <= 10_000:
            raise SettingsError(
                f"PARLEY_MESSAGE_BATCH_MAX must be 1 to 10000, not {self.message_batch_max}"
            )
        if not 0 <= self.message_batch_window_seconds <= 1:  # also refuses NaN
            raise SettingsError(
                "PARLEY_MESSAGE_BATCH_WINDOW_SECONDS must be 0 to 1, not "
                f"{self.message_batch_window_seconds!r}"
            )
        positive("PARLEY_MESSAGE_COMMIT_TIMEOUT_SECONDS", self.message_commit_timeout_seconds)
        if not 1 <= self.message_fetch_limit <= 1000:
            raise SettingsError(
                f"PARLEY_MESSAGE_FETCH_LIMIT must be 1 to 1000, not {self.message_fetch_limit}"
            )
        if self.message_registered_cache_size < 0:
            raise SettingsError(
                "PARLEY_MESSAGE_REGISTERED_CACHE_SIZE must be 0 or more, not "
                f"{self.message_registered_cache_size}"
            )
        positive("PARLEY_MESSAGE_REDELIVER_SECONDS", self.message_redeliver_seconds)
        positive("PARLEY_MESSAGE_REDELIVER_AFTER_SECONDS", self.message_redeliver_after_seconds)
        positive("PARLEY_MESSAGE_REDELIVER_MAX_AGE_SECONDS", self.message_redeliver_max_age_seconds)
        if self.message_redeliver_max_age_seconds > self.retention_seconds:
            raise SettingsError(
                "PARLEY_MESSAGE_REDELIVER_MAX_AGE_SECONDS must not exceed the retention time "
                f"({self.retention_seconds:.0f} seconds), not "
                f"{self.message_redeliver_max_age_seconds!r}"
            )

    @property
    def retention_seconds(self) -> float:
        return self.message_retention_days * 86_400.0

    @property
    def window(self) -> bool:
        """Device events go through the resume window (every service must agree)."""
        return self.event_window_seconds > 0
