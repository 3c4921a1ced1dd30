"""The SIP user agent: pjsua2 on its own thread, with an asyncio face."""

from parley_sip.engine.engine import SipEngine
from parley_sip.engine.leg import IncomingHandler, IncomingInvite, SipLeg
from parley_sip.engine.types import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Credentials,
    EngineConfig,
    SipEnd,
    SipError,
)

__all__ = [
    "FRAME_BYTES",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "Credentials",
    "EngineConfig",
    "IncomingHandler",
    "IncomingInvite",
    "SipEnd",
    "SipEngine",
    "SipError",
    "SipLeg",
]
