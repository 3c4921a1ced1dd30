"""Settings of the gateway: the shared ones plus the public listener and session timings."""

from __future__ import annotations

import dataclasses

from parley_service.settings import ServiceSettings, SettingsError, positive


@dataclasses.dataclass(frozen=True)
class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"
    # The public HTTP/WebSocket listener; port 0 picks a free port (logged, and on Gateway.port).
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    # Connections the kernel holds for the listener until the gateway accepts them (the
    # kernel caps it at net.core.somaxconn). aiohttp's 128 overflowed when a replica's
    # clients all came back at once: the kernel dropped their handshakes, and each client
    # waited for its SYN to be sent again (1 s, 3 s, 7 s, 15 s, 31 s later).
    listen_backlog: int = 4096
    # Names this gateway in presence and in connection subjects; "" means the instance id.
    gateway_id: str = ""
    # The gateway pings a session it heard nothing from for this long (a WebSocket Ping,
    # those of a sweep round written together), and its client's Pong answers; a session
    # silent for 2.5 intervals is closed. 30 s keeps a connection through the idle timeouts
    # of common proxies and load balancers (60 s); its Ping and Pong are the largest cost
    # of an idle connection (bench/connect.py).
    heartbeat_interval_ms: int = 30_000
    # A connection must send its Hello within this many seconds.
    hello_timeout_seconds: float = 10.0
    # Presence entries expire this long after the last refresh (so a crashed gateway's go).
    presence_ttl_seconds: float = 60.0
    # Gateways announce themselves this often; one silent for 3 intervals counts as gone,
    # and the presence entries it left are not counted.
    peer_heartbeat_seconds: float = 2.0
    # A token signed with an unknown key refetches the JWKS at most this often.
    jwks_refetch_seconds: float = 5.0
    # The JWKS is refetched this often anyway, so removed keys stop being trusted.
    jwks_max_age_seconds: float = 300.0
    # Connections this gateway takes; beyond them an upgrade gets 503 (clients try another).
    max_connections: int = 25_000
    # Each session may send this many frames at once, then this many per second on average;
    # frames beyond that get RATE_LIMITED, and a session that keeps going is closed (4429).
    session_frame_burst: int = 50
    session_frame_rate: float = 20.0
    # Routed requests of one session waiting for their services' replies at once; beyond
    # that a request gets RATE_LIMITED.
    max_requests_in_flight: int = 16
    # Sign-ins (routing, resume, presence: a few NATS round trips each) this gateway runs at
    # once; later Hellos wait their turn. A reconnect storm (a replica gone, its clients all
    # back within a second) then finishes sign-ins at the rate NATS answers them, instead of
    # starting thousands at once and timing them all out.
    max_sign_ins_in_flight: int = 128
    # The resume window (with the shared event_window_seconds): events kept per device
    # session (and per user for those to every device); a resume that would replay more
    # starts a new session instead. File storage survives a NATS restart; memory is faster.
    event_window_max_events: int = 1000
    event_window_file: bool = False
    # App backends' REST requests: an x-timestamp further than this from the gateway's clock
    # (behind or ahead) is refused as stale, which bounds the replay of a captured request.
    rest_max_skew_seconds: float = 600.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.gateway_id:
            object.__setattr__(self, "gateway_id", _as_token(self.instance_id))
        _check_token("PARLEY_GATEWAY_ID", self.gateway_id)
        if not 0 <= self.gateway_port <= 65535:
            raise SettingsError(f"PARLEY_GATEWAY_PORT must be 0..65535, not {self.gateway_port}")
        for name, value in (
            ("PARLEY_HEARTBEAT_INTERVAL_MS", self.heartbeat_interval_ms),
            ("PARLEY_HELLO_TIMEOUT_SECONDS", self.hello_timeout_seconds),
            ("PARLEY_PRESENCE_TTL_SECONDS", self.presence_ttl_seconds),
            ("PARLEY_PEER_HEARTBEAT_SECONDS", self.peer_heartbeat_seconds),
            ("PARLEY_JWKS_REFETCH_SECONDS", self.jwks_refetch_seconds),
            ("PARLEY_JWKS_MAX_AGE_SECONDS", self.jwks_max_age_seconds),
            ("PARLEY_MAX_CONNECTIONS", self.max_connections),
            ("PARLEY_LISTEN_BACKLOG", self.listen_backlog),
            ("PARLEY_SESSION_FRAME_BURST", self.session_frame_burst),
            ("PARLEY_SESSION_FRAME_RATE", self.session_frame_rate),
            ("PARLEY_MAX_REQUESTS_IN_FLIGHT", self.max_requests_in_flight),
            ("PARLEY_MAX_SIGN_INS_IN_FLIGHT", self.max_sign_ins_in_flight),
            ("PARLEY_EVENT_WINDOW_MAX_EVENTS", self.event_window_max_events),
        ):
            if value <= 0:
                raise SettingsError(f"{name} must be greater than 0, not {value}")
        positive("PARLEY_REST_MAX_SKEW_SECONDS", self.rest_max_skew_seconds)
        if self.heartbeat_interval_ms > 3_600_000:
            raise SettingsError(
                "PARLEY_HEARTBEAT_INTERVAL_MS must be at most 3600000 (an hour), "
                f"not {self.heartbeat_interval_ms}"
            )
        if self.presence_ttl_seconds < 1:
            raise SettingsError(
                f"PARLEY_PRESENCE_TTL_SECONDS must be at least 1, not {self.presence_ttl_seconds}"
            )

    @property
    def window(self) -> bool:
        return self.event_window_seconds > 0

    @property
    def presence_entry_ttl_seconds(self) -> float:
        """Presence entries double as resume records: they live at least the window."""
        return max(self.presence_ttl_seconds, self.event_window_seconds)

    @property
    def heartbeat_timeout_seconds(self) -> float:
        """Silence after which a session is closed: 2.5 heartbeat intervals."""
        return self.heartbeat_interval_ms * 2.5 / 1000


def _as_token(value: str) -> str:
    """The instance id made safe as a subject token (a hostname may hold dots)."""
    return "".join("-" if c in ".*>" or not c.isprintable() or c.isspace() else c for c in value)


def _check_token(name: str, value: str) -> None:
    """The gateway id is a NATS subject token and part of presence values."""
    bad = [c for c in value if c in ".*> \t\r\n" or not c.isprintable()]
    if bad or len(value) > 128:
        raise SettingsError(
            f"{name} must be at most 128 printable characters without '.', '*', '>' or "
            f"spaces, not {value!r}"
        )
