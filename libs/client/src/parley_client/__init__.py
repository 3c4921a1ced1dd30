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
"""

from parley_client.builder import ParleyClientBuilder
from parley_client.client import ClientListener, ParleyClient
from parley_client.config import Capabilities
from parley_client.errors import ConfigurationError, ConfigurationProblem, ErrorType, ParleyError
from parley_client.features import Connected, Feature, FeatureLink
from parley_client.presence import UserPresence
from parley_client.registration import ClientRegistration
from parley_client.resume import ResumeStats

__all__ = [
    "Capabilities",
    "ClientListener",
    "ClientRegistration",
    "ConfigurationError",
    "ConfigurationProblem",
    "Connected",
    "ErrorType",
    "Feature",
    "FeatureLink",
    "ParleyClient",
    "ParleyClientBuilder",
    "ParleyError",
    "ResumeStats",
    "UserPresence",
]
