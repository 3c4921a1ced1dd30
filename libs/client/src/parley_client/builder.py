"""`ParleyClient.builder()`: collects the settings of a client (the guide's SinchClientBuilder)."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Self, TypeVar

from parley_client.config import ClientConfig
from parley_client.errors import ConfigurationError, ConfigurationProblem
from parley_client.quality import CallQualitySettings

if TYPE_CHECKING:
    from parley_client.call import Call
    from parley_client.media import Media

C = TypeVar("C")

ENV_APPLICATION_KEY = "PARLEY_APPLICATION_KEY"
ENV_APPLICATION_SECRET = "PARLEY_APPLICATION_SECRET"
ENV_USER_ID = "PARLEY_USER_ID"
ENV_ENVIRONMENT_HOST = "PARLEY_ENVIRONMENT_HOST"
ENV_PERSISTENCE_DIR = "PARLEY_PERSISTENCE_DIR"


def _bad(field: str, reason: str) -> ConfigurationError:
    return ConfigurationError([ConfigurationProblem(field, reason)])


def _text(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise _bad(field, f"must be a string, not {type(value).__name__}")
    return value


def _seconds(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(field, f"must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise _bad(field, f"must be a positive number of seconds, not {value!r}")
    return float(value)


class ParleyClientBuilder(Generic[C]):
    """Fluent settings for a client that `factory(config)` makes (`ParleyClient.builder()`
    passes ParleyClient). Mistakes of type are raised at once as ConfigurationError; missing
    or invalid values are reported by `check_configuration()`."""

    def __init__(self, factory: Callable[[ClientConfig], C]) -> None:
        self._factory = factory
        self._config = ClientConfig()

    def application_key(self, key: str) -> Self:
        self._config = replace(self._config, application_key=_text("application_key", key))
        return self

    def application_secret(self, secret: str | None) -> Self:
        """The secret, to self-sign registration; leave it out to have the app server sign."""
        if secret is not None:
            _text("application_secret", secret)
        self._config = replace(self._config, application_secret=secret)
        return self

    def user_id(self, user_id: str) -> Self:
        self._config = replace(self._config, user_id=_text("user_id", user_id))
        return self

    def environment_host(self, host: str) -> Self:
        """ "host:port", "http(s)://host[:port]", or several comma-separated (gateway replicas)."""
        hosts = _text("environment_host", host).split(",")
        self._config = replace(self._config, environment_hosts=tuple(hosts))
        return self

    def environment_hosts(self, hosts: Iterable[str]) -> Self:
        if isinstance(hosts, str):
            return self.environment_host(hosts)
        items = tuple(_text("environment_host", host) for host in hosts)
        self._config = replace(self._config, environment_hosts=items)
        return self

    def persistence_dir(self, path: str | os.PathLike[str]) -> Self:
        """Where device credentials, unsent messages and the ids of messages already shown
        are kept (default: ~/.local/share/parley)."""
        if not isinstance(path, str | os.PathLike):
            raise _bad("persistence_dir", f"must be a path, not {type(path).__name__}")
        text = os.fspath(path)
        if not text:
            raise _bad("persistence_dir", "is empty")
        self._config = replace(self._config, persistence_dir=Path(text).expanduser())
        return self

    def media(self, enabled: bool) -> Self:
        """False: signaling only, no media stack (load tests of many clients in one process)."""
        if not isinstance(enabled, bool):
            raise _bad("media", f"must be True or False, not {enabled!r}")
        self._config = replace(self._config, media=enabled)
        return self

    def media_factory(self, factory: Callable[[Call], Media]) -> Self:
        """Calls get their media from `factory(call)` instead of the client's own aiortc
        peer connection (implies `media(False)`): load tests plug in light peers of their
        own. A Media offers, answers, accepts an answer, closes, and says when it flows."""
        if not callable(factory):
            raise _bad("media_factory", f"must be callable, not {factory!r}")
        self._config = replace(self._config, media=False, media_factory=factory)
        return self

    def device_name(self, name: str) -> Self:
        """A name for this device, shown to the application's operators."""
        self._config = replace(self._config, device_name=_text("device_name", name))
        return self

    def heartbeat_interval(self, seconds: float) -> Self:
        """Check the connection on this interval instead of the gateway's (Welcome), when
        shorter: with a gateway that pings idle clients, a Ping is sent after 1.5 intervals
        of hearing nothing; with one that does not, one every interval."""
        value = _seconds("heartbeat_interval", seconds)
        self._config = replace(self._config, heartbeat_interval=value)
        return self

    def request_timeout(self, seconds: float) -> Self:
        """How long to wait for an HTTP answer, a Welcome, or the reply to a request."""
        value = _seconds("request_timeout", seconds)
        self._config = replace(self._config, request_timeout=value)
        return self

    def registration_timeout(self, seconds: float) -> Self:
        """How long `on_registration_credentials_required` may take to answer."""
        value = _seconds("registration_timeout", seconds)
        self._config = replace(self._config, registration_timeout=value)
        return self

    def ice_host_addresses(self, addresses: Iterable[str] | None) -> Self:
        """The local addresses calls offer as ICE host candidates (e.g. ["127.0.0.1"] for
        calls within one machine); None: every address but loopback."""
        if addresses is None:
            self._config = replace(self._config, ice_host_addresses=None)
            return self
        if isinstance(addresses, str):
            raise _bad("ice_host_addresses", "must be a list of IP addresses, not a string")
        chosen = []
        for address in addresses:
            try:
                chosen.append(str(ipaddress.ip_address(_text("ice_host_addresses", address))))
            except ValueError:
                raise _bad("ice_host_addresses", f"{address!r} is not an IP address") from None
        if not chosen:
            raise _bad("ice_host_addresses", "is empty; leave it out for every address")
        self._config = replace(self._config, ice_host_addresses=tuple(chosen))
        return self

    def ice_transport_policy(self, policy: str) -> Self:
        """ "all" (default) or "relay": media only through the TURN server."""
        if policy not in ("all", "relay"):
            raise _bad("ice_transport_policy", f"must be 'all' or 'relay', not {policy!r}")
        self._config = replace(self._config, ice_transport_policy=policy)
        return self

    def inactive_timeout(self, seconds: float) -> Self:
        """End an established call (INACTIVE) when no media arrives for this long (10 s)."""
        value = _seconds("inactive_timeout", seconds)
        self._config = replace(self._config, inactive_timeout=value)
        return self

    def message_retry_period(self, seconds: float) -> Self:
        """How long a message that could not be sent (a NETWORK failure: not connected, timed
        out, service unavailable) is kept and retried before it fails (12 h)."""
        value = _seconds("message_retry_period", seconds)
        self._config = replace(self._config, message_retry_period=value)
        return self

    def call_statistics(self, enabled: bool) -> Self:
        """Whether the statistics of every ended call are uploaded to the stats service, in
        the background (True by default). `call.statistics` is set either way."""
        if not isinstance(enabled, bool):
            raise _bad("call_statistics", f"must be True or False, not {enabled!r}")
        self._config = replace(self._config, call_statistics=enabled)
        return self

    def call_quality(self, settings: CallQualitySettings) -> Self:
        """How often established calls are sampled and when quality warnings are raised
        and lifted (`CallQualitySettings`; the defaults are the hosted SDKs')."""
        if not isinstance(settings, CallQualitySettings):
            raise _bad("call_quality", f"must be a CallQualitySettings, not {settings!r}")
        problems = settings.problems()
        if problems:
            raise ConfigurationError(
                [ConfigurationProblem("call_quality", problem) for problem in problems]
            )
        self._config = replace(self._config, call_quality=settings)
        return self

    def from_env(self, environ: Mapping[str, str] | None = None) -> Self:
        """Take PARLEY_APPLICATION_KEY, PARLEY_APPLICATION_SECRET, PARLEY_USER_ID,
        PARLEY_ENVIRONMENT_HOST and PARLEY_PERSISTENCE_DIR, where they are set."""
        env = os.environ if environ is None else environ
        if ENV_APPLICATION_KEY in env:
            self.application_key(env[ENV_APPLICATION_KEY])
        if env.get(ENV_APPLICATION_SECRET):
            self.application_secret(env[ENV_APPLICATION_SECRET])
        if ENV_USER_ID in env:
            self.user_id(env[ENV_USER_ID])
        if ENV_ENVIRONMENT_HOST in env:
            self.environment_host(env[ENV_ENVIRONMENT_HOST])
        if env.get(ENV_PERSISTENCE_DIR):
            self.persistence_dir(env[ENV_PERSISTENCE_DIR])
        return self

    @property
    def config(self) -> ClientConfig:
        return self._config

    def build(self) -> C:
        return self._factory(self._config)
