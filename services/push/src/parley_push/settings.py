"""Settings of the push service: the shared ones plus the master key, payload lifetimes,
the senders' concurrency and retries, and an extra CA file for provider endpoints."""

from __future__ import annotations

import dataclasses
import os

from parley_service.secrets_box import parse_master_key
from parley_service.settings import ServiceSettings, SettingsError, positive


@dataclasses.dataclass(frozen=True)
class PushSettings(ServiceSettings):
    service_name: str = "push"
    # Base64 of 32 bytes (the deployment's master key): opens provider credentials and keys
    # the payload signatures.
    auth_master_key: str = dataclasses.field(default="", repr=False)
    # A call's payload is valid this long after the call stopped ringing (a device relaying
    # it later learns the call timed out); a message's this long after it was sent.
    push_call_payload_grace_seconds: float = 300.0
    push_message_payload_ttl_seconds: float = 7 * 86_400.0
    # Provider sends in flight at once per replica.
    push_concurrency: int = 256
    # A job that failed for a passing reason (provider outage, 429, 5xx) is tried again
    # after push_retry_base_seconds, doubling up to push_retry_max_seconds, at most
    # push_max_attempts times in all.
    push_retry_base_seconds: float = 1.0
    push_retry_max_seconds: float = 300.0
    push_max_attempts: int = 20
    # Jobs left in the stream longer than this are dropped (the notification is stale).
    push_job_max_age_seconds: float = 86_400.0
    # Credentials read from the database are used this long before being read again.
    push_credentials_cache_seconds: float = 30.0
    # Extra trusted CA certificates (PEM) for provider endpoints, e.g. a private relay.
    push_ca_file: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_master_key(self.auth_master_key)
        if not self.database_url:
            raise SettingsError("PARLEY_DATABASE_URL is not set: push keeps its tables there")
        positive("PARLEY_PUSH_CALL_PAYLOAD_GRACE_SECONDS", self.push_call_payload_grace_seconds)
        positive("PARLEY_PUSH_MESSAGE_PAYLOAD_TTL_SECONDS", self.push_message_payload_ttl_seconds)
        positive("PARLEY_PUSH_CONCURRENCY", self.push_concurrency)
        positive("PARLEY_PUSH_RETRY_BASE_SECONDS", self.push_retry_base_seconds)
        positive("PARLEY_PUSH_RETRY_MAX_SECONDS", self.push_retry_max_seconds)
        positive("PARLEY_PUSH_MAX_ATTEMPTS", self.push_max_attempts)
        positive("PARLEY_PUSH_JOB_MAX_AGE_SECONDS", self.push_job_max_age_seconds)
        if self.push_credentials_cache_seconds < 0:
            raise SettingsError(
                "PARLEY_PUSH_CREDENTIALS_CACHE_SECONDS must be 0 or more, not "
                f"{self.push_credentials_cache_seconds!r}"
            )
        if self.push_ca_file and not os.path.isfile(self.push_ca_file):
            raise SettingsError(f"PARLEY_PUSH_CA_FILE names no file: {self.push_ca_file}")

    @property
    def master_key(self) -> bytes:
        return parse_master_key(self.auth_master_key)
