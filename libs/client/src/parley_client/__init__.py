"""Parley reference client SDK (asyncio).

client = (ParleyClient.builder()
          .application_key("196087a1-e815-4bc4-8984-60d8d8a43f1d")
          .application_secret("oYdgGRXoxEuJhGDY2KQ/HQ==")
          .user_id("alice")
          .environment_host("localhost:8080")
          .build())
client.set_support_messaging(True)
client.add_client_listener(listener)
await client.start()

The media sources (ToneSource, SilenceSource, PatternSource, PatternMark) are aiortc tracks:
they are imported from parley_client.sources when first named, so a client in
signalling-only mode never loads aiortc.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from parley_client.audio import AudioController
from parley_client.builder import ParleyClientBuilder
from parley_client.call import Call, CallListener
from parley_client.call_details import (
    CallDetails,
    CallDirection,
    CallEndCause,
    CallKind,
    CallState,
    PushPair,
)
from parley_client.call_report import CallStatistics, MediaStatistics
from parley_client.calls import CallClient, CallClientListener
from parley_client.client import ClientListener, ParleyClient
from parley_client.conference import ConferenceEvent, Participant, ParticipantChange
from parley_client.config import Capabilities
from parley_client.errors import ConfigurationError, ConfigurationProblem, ErrorType, ParleyError
from parley_client.features import Connected, Feature, FeatureLink
from parley_client.message import (
    Message,
    MessageDeliveryInfo,
    MessageFailureInfo,
    MessageReadInfo,
    WritableMessage,
)
from parley_client.messaging import MessageClient, MessageClientListener
from parley_client.notification import (
    CallNotificationResult,
    MessageNotificationResult,
    NotificationResult,
    PushProvider,
    PushToken,
)
from parley_client.presence import UserPresence
from parley_client.push import PushClient
from parley_client.quality import (
    CallQualitySettings,
    CallQualityWarning,
    QualityRule,
    QualityWarningEvent,
    QualityWarningKind,
)
from parley_client.registration import ClientRegistration
from parley_client.resume import ResumeStats
from parley_client.video import ResizeBehaviour, VideoController

if TYPE_CHECKING:
    from parley_client.sources import PatternMark, PatternSource, SilenceSource, ToneSource

_SOURCES = frozenset({"PatternMark", "PatternSource", "SilenceSource", "ToneSource"})


def __getattr__(name: str) -> Any:
    if name in _SOURCES:
        from parley_client import sources

        return getattr(sources, name)
    raise AttributeError(f"module 'parley_client' has no attribute {name!r}")


__all__ = [
    "AudioController",
    "Call",
    "CallClient",
    "CallClientListener",
    "CallDetails",
    "CallDirection",
    "CallEndCause",
    "CallKind",
    "CallListener",
    "CallNotificationResult",
    "CallQualitySettings",
    "CallQualityWarning",
    "CallState",
    "CallStatistics",
    "Capabilities",
    "ClientListener",
    "ClientRegistration",
    "ConferenceEvent",
    "ConfigurationError",
    "ConfigurationProblem",
    "Connected",
    "ErrorType",
    "Feature",
    "FeatureLink",
    "MediaStatistics",
    "Message",
    "MessageClient",
    "MessageClientListener",
    "MessageDeliveryInfo",
    "MessageFailureInfo",
    "MessageNotificationResult",
    "MessageReadInfo",
    "NotificationResult",
    "ParleyClient",
    "ParleyClientBuilder",
    "ParleyError",
    "Participant",
    "ParticipantChange",
    "PatternMark",
    "PatternSource",
    "PushClient",
    "PushPair",
    "PushProvider",
    "PushToken",
    "QualityRule",
    "QualityWarningEvent",
    "QualityWarningKind",
    "ResizeBehaviour",
    "ResumeStats",
    "SilenceSource",
    "ToneSource",
    "UserPresence",
    "VideoController",
    "WritableMessage",
]
