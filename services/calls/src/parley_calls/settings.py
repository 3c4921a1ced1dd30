"""Settings of the calls service: the shared ones plus call timeouts and the TURN servers."""

from __future__ import annotations

import dataclasses
import math

from parley_service.settings import ServiceSettings, SettingsError, positive

ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
TURN_SCHEMES = ("turn:", "turns:")


@dataclasses.dataclass(frozen=True)
class CallsSettings(ServiceSettings):
    service_name: str = "calls"
    # No callee device rang within this time after the start: the call ends TIMEOUT.
    call_setup_timeout_seconds: float = 30.0
    # A callee device rings (or none was reachable) this long at most: the call ends NO_ANSWER.
    call_ringing_timeout_seconds: float = 60.0
    # An ended call's record stays this long (late requests hear "ended", not "unknown").
    call_linger_seconds: float = 60.0
    # How often each replica ends the calls whose deadline passed.
    call_sweep_seconds: float = 0.5
    # How often each replica checks that both parties of answered calls still have a session.
    call_party_check_seconds: float = 10.0
    # ICE servers given to devices, comma-separated: stun:, stuns:, turn: and turns: URLs.
    turn_urls: str = ""
    # The shared secret of the TURN servers' REST scheme (coturn's use-auth-secret).
    turn_secret: str = dataclasses.field(default="", repr=False)
    # How long a TURN credential is valid.
    turn_ttl_seconds: int = 3600

    def __post_init__(self) -> None:
        super().__post_init__()
        positive("PARLEY_CALL_SETUP_TIMEOUT_SECONDS", self.call_setup_timeout_seconds)
        positive("PARLEY_CALL_RINGING_TIMEOUT_SECONDS", self.call_ringing_timeout_seconds)
        positive("PARLEY_CALL_SWEEP_SECONDS", self.call_sweep_seconds)
        positive("PARLEY_CALL_PARTY_CHECK_SECONDS", self.call_party_check_seconds)
        # The ended record expires by a per-message TTL, counted in whole seconds.
        if not math.isfinite(self.call_linger_seconds) or self.call_linger_seconds < 1:
            raise SettingsError(
                f"PARLEY_CALL_LINGER_SECONDS must be at least 1, not {self.call_linger_seconds!r}"
            )
        for url in self.ice_urls:
            if not url.startswith(ICE_SCHEMES):
                raise SettingsError(
                    f"PARLEY_TURN_URLS: {url!r} is not a stun:, stuns:, turn: or turns: URL"
                )
        if self.turn_server_urls and not self.turn_secret:
            raise SettingsError(
                "PARLEY_TURN_SECRET is not set: TURN servers in PARLEY_TURN_URLS need the "
                "shared secret their credentials are made with"
            )
        if not 60 <= self.turn_ttl_seconds <= 7 * 86_400:
            raise SettingsError(
                "PARLEY_TURN_TTL_SECONDS must be 60 to 604800 (a week), not "
                f"{self.turn_ttl_seconds}"
            )

    @property
    def ice_urls(self) -> list[str]:
        return [url.strip() for url in self.turn_urls.split(",") if url.strip()]

    @property
    def stun_server_urls(self) -> list[str]:
        return [url for url in self.ice_urls if not url.startswith(TURN_SCHEMES)]

    @property
    def turn_server_urls(self) -> list[str]:
        return [url for url in self.ice_urls if url.startswith(TURN_SCHEMES)]

    @property
    def window(self) -> bool:
        """Device events go through the resume window (every service must agree)."""
        return self.event_window_seconds > 0
