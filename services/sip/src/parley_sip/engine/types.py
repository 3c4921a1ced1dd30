"""The engine's plain values: its configuration, digest credentials, how a leg ended."""

from __future__ import annotations

from dataclasses import dataclass

# The audio every leg exchanges with the rest of the service: 48 kHz mono s16le, 20 ms.
SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960
FRAME_BYTES = FRAME_SAMPLES * 2


@dataclass(frozen=True)
class EngineConfig:
    bind_host: str = "127.0.0.1"
    port: int = 0  # SIP port; 0 = pick a free one
    transport: str = "udp"  # "udp" or "tcp"
    public_host: str | None = None  # address put in Contact/SDP when not bind_host
    rtp_port_start: int = 0  # 0 = let pjsua choose
    user_agent: str = "Parley"
    # The conference bridge's clock. Legs' 48 kHz ports and the calls' codecs are
    # resampled to it by the bridge; 16 kHz keeps G.722 wideband and costs little.
    bridge_clock_rate: int = 16_000
    # Asked of pjsua; the build's PJSUA_MAX_CALLS caps it (see SipEngine.max_calls).
    max_calls: int = 1024


@dataclass(frozen=True)
class Credentials:
    """Digest credentials answered on 401/407."""

    username: str
    password: str
    realm: str = "*"


@dataclass(frozen=True)
class SipEnd:
    """How a leg ended."""

    code: int  # 200 for a normal BYE after answer, 487 cancelled, 486, 404, 503, 408...
    reason: str
    by_remote: bool  # the far end ended it (BYE or a final error), not our hangup


class SipError(Exception):
    """A SIP operation the user agent refused or could not do (the pjsua reason inside)."""
