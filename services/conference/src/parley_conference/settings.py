"""Settings of the conference service: how many participants a replica holds, how rooms are
placed, when a silent participant is taken for gone, and the WebRTC side."""

from __future__ import annotations

import dataclasses

from parley_legs.webrtc import host_addresses
from parley_service.settings import ServiceSettings, SettingsError, positive


@dataclasses.dataclass(frozen=True)
class ConferenceSettings(ServiceSettings):
    service_name: str = "conference"
    # Participants one replica holds at once (in all its rooms); a new room goes to the
    # least-loaded replica, and a full replica refuses joins UNAVAILABLE.
    conference_max_participants: int = 200
    # How often a replica writes its load (the KV bucket conference_replicas), and how long
    # an entry lasts unrewritten: a replica silent that long is gone, and its rooms may be
    # placed anew.
    conference_load_seconds: float = 2.0
    conference_replica_ttl_seconds: float = 10.0
    # A participant from whom no audio arrived for this long (its network dropped) is
    # removed; the others carry on.
    conference_media_timeout_seconds: float = 10.0
    # How long a participant's media may take to connect after it joined.
    conference_connect_seconds: float = 15.0
    # How long a user called into a room (callout) rings before the call is given up.
    conference_callout_ring_seconds: float = 45.0
    # How long a stopping replica lets its rooms go on before it ends them.
    conference_drain_seconds: float = 600.0
    # The local addresses WebRTC offers as ICE host candidates, comma-separated ("": every
    # interface aioice finds, and 127.0.0.1).
    conference_ice_host_addresses: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.conference_max_participants < 1:
            raise SettingsError(
                "PARLEY_CONFERENCE_MAX_PARTICIPANTS must be at least 1, not "
                f"{self.conference_max_participants}"
            )
        for name in (
            "conference_load_seconds",
            "conference_replica_ttl_seconds",
            "conference_media_timeout_seconds",
            "conference_connect_seconds",
            "conference_callout_ring_seconds",
            "conference_drain_seconds",
        ):
            positive(f"PARLEY_{name.upper()}", getattr(self, name))
        if self.conference_replica_ttl_seconds < 2 * self.conference_load_seconds:
            raise SettingsError(
                "PARLEY_CONFERENCE_REPLICA_TTL_SECONDS must be at least twice "
                "PARLEY_CONFERENCE_LOAD_SECONDS (a replica would seem gone between writes)"
            )

    @property
    def ice_host_addresses(self) -> tuple[str, ...] | None:
        return host_addresses(self.conference_ice_host_addresses)
