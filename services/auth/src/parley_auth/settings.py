"""Settings of the auth service: the shared ones plus the master key and token lifetimes."""

from __future__ import annotations

import dataclasses
import math

from parley_service.secrets_box import parse_master_key
from parley_service.settings import ServiceSettings, SettingsError, positive


@dataclasses.dataclass(frozen=True)
class AuthSettings(ServiceSettings):
    service_name: str = "auth"
    # Base64 of 32 bytes; encrypts application secrets and signing keys (AES-256-GCM).
    auth_master_key: str = dataclasses.field(default="", repr=False)
    auth_token_ttl_seconds: int = 900
    # Self-signed registrations must be signed within this many seconds of server time.
    auth_self_signed_window_seconds: int = 300
    # How long a decrypted application secret is kept in memory.
    auth_app_cache_seconds: float = 30.0
    # Signing keys are re-read this often (and at once when a rotation is announced).
    auth_key_reload_seconds: float = 30.0
    # Calls to phones: the longest call a reservation pays for (it holds the cost of this
    # long a call, or the whole available balance when that is less).
    auth_credit_max_call_seconds: int = 4 * 3600
    # A reservation not settled this long after the time it pays for is settled by the
    # sweeper, for the duration last touched (its sip replica is gone).
    auth_credit_grace_seconds: int = 120
    # A reservation is a lease: one not touched for this long (the sip service touches its
    # calls every few seconds, ringing or talking) is settled by the sweeper, so a replica
    # that died releases the rest of the credit within this time, not after the call's
    # longest length.
    auth_credit_lease_seconds: int = 90
    # How often each replica looks for such reservations.
    auth_credit_sweep_seconds: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_master_key(self.auth_master_key)
        if not self.database_url:
            raise SettingsError("PARLEY_DATABASE_URL is not set: auth keeps its tables there")
        positive("PARLEY_AUTH_TOKEN_TTL_SECONDS", self.auth_token_ttl_seconds)
        positive("PARLEY_AUTH_SELF_SIGNED_WINDOW_SECONDS", self.auth_self_signed_window_seconds)
        positive("PARLEY_AUTH_KEY_RELOAD_SECONDS", self.auth_key_reload_seconds)
        positive("PARLEY_AUTH_CREDIT_MAX_CALL_SECONDS", self.auth_credit_max_call_seconds)
        positive("PARLEY_AUTH_CREDIT_SWEEP_SECONDS", self.auth_credit_sweep_seconds)
        positive("PARLEY_AUTH_CREDIT_LEASE_SECONDS", self.auth_credit_lease_seconds)
        if self.auth_credit_grace_seconds < 0:
            raise SettingsError(
                "PARLEY_AUTH_CREDIT_GRACE_SECONDS must be 0 or more, "
                f"not {self.auth_credit_grace_seconds}"
            )
        if not math.isfinite(self.auth_app_cache_seconds) or self.auth_app_cache_seconds < 0:
            raise SettingsError(
                f"PARLEY_AUTH_APP_CACHE_SECONDS must be 0 or more, not {self.auth_app_cache_seconds}"
            )

    @property
    def master_key(self) -> bytes:
        return parse_master_key(self.auth_master_key)
