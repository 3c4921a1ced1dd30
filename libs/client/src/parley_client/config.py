"""Client configuration: the settings a builder collects, gateway hosts, and their checks."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from parley_client.errors import ConfigurationError, ConfigurationProblem
from parley_client.quality import CallQualitySettings
from parley_protocol import validation
from parley_protocol.errors import ParleyError as ProtocolError

DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_REGISTRATION_TIMEOUT = 60.0
DEFAULT_INACTIVE_TIMEOUT = 10.0
# How long an unsent message is retried (the guide's 12 hours) before it fails.
DEFAULT_MESSAGE_RETRY_PERIOD = 12 * 3600.0

_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def default_persistence_dir() -> Path:
    """$XDG_DATA_HOME/parley, else ~/.local/share/parley."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "parley"


@dataclass(frozen=True)
class Endpoint:
    """One gateway replica: its HTTP base URL and its WebSocket URL."""

    base_url: str  # e.g. "http://localhost:8080" (a path prefix, if any, without a trailing /)

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def connect_url(self) -> str:
        scheme, rest = self.base_url.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + "/v1/connect"

    def __str__(self) -> str:
        return self.base_url


def parse_host(spec: str) -> Endpoint:
    """One host: "host:port", "host", or a full "http(s)://host[:port][/prefix]".

    Without a scheme the client uses http, or https when the port is 443. Raises ValueError
    saying what is wrong.
    """
    text = spec.strip()
    if not text:
        raise ValueError("host is empty")
    if "://" in text:
        scheme_text, rest = text.split("://", 1)
        scheme = _SCHEMES.get(scheme_text.lower())
        if scheme is None:
            raise ValueError(f"{text!r} has scheme {scheme_text!r}; use http or https")
    else:
        scheme, rest = "", text
    parts = urlsplit("//" + rest)
    if parts.query or parts.fragment or "?" in rest or "#" in rest:
        raise ValueError(f"{text!r} has a query or fragment; give only scheme, host and port")
    if "@" in parts.netloc:
        raise ValueError(f"{text!r} carries user information; give only scheme, host and port")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port (expected 1 to 65535)") from None
    if port == 0:
        raise ValueError(f"{text!r} has an invalid port (expected 1 to 65535)")
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{text!r} has no host name")
    if not _valid_host(host):
        raise ValueError(f"{text!r} has an invalid host name {host!r}")
    if not scheme:
        scheme = "https" if port == 443 else "http"
    netloc_host = f"[{host}]" if ":" in host else host
    netloc = netloc_host if port is None else f"{netloc_host}:{port}"
    path = parts.path.rstrip("/")
    if path and not path.startswith("/"):
        raise ValueError(f"{text!r} has an invalid path")
    return Endpoint(f"{scheme}://{netloc}{path}")


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return len(host) <= 253 and _HOSTNAME.fullmatch(host) is not None
    return True


def parse_hosts(specs: str | list[str] | tuple[str, ...]) -> tuple[Endpoint, ...]:
    """Every host of a comma-separated string (or a list): the gateway replicas, in order."""
    items = specs.split(",") if isinstance(specs, str) else list(specs)
    if not items or all(not item.strip() for item in items):
        raise ValueError("no host given")
    endpoints: list[Endpoint] = []
    for index, item in enumerate(items):
        if not item.strip():
            raise ValueError(f"host number {index + 1} of {len(items)} is empty")
        endpoint = parse_host(item)
        if endpoint not in endpoints:
            endpoints.append(endpoint)
    return tuple(endpoints)


@dataclass
class Capabilities:
    """The guide's capability switches, sent in every Hello."""

    calling: bool = False
    messaging: bool = False
    active_connection_in_background: bool = False
    managed_push: bool = False


@dataclass(frozen=True)
class ClientConfig:
    """What a builder collected. Checked by `check_configuration`, not on construction."""

    application_key: str | None = None
    application_secret: str | None = None
    user_id: str | None = None
    environment_hosts: tuple[str, ...] | None = None
    persistence_dir: Path | None = None
    media: bool = True
    # Calls get their media from this (a call -> Media) instead of aiortc's peer connection
    # (load tests: light peers of their own); set with media off.
    media_factory: Callable[[Any], Any] | None = None
    device_name: str = ""
    heartbeat_interval: float | None = None
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    registration_timeout: float = DEFAULT_REGISTRATION_TIMEOUT
    # Calls: the local addresses ICE offers (None: every address but loopback, aioice's
    # choice), "all" or "relay" (TURN only), and how long an established call may go
    # without media before it ends INACTIVE.
    ice_host_addresses: tuple[str, ...] | None = None
    ice_transport_policy: str = "all"
    inactive_timeout: float = DEFAULT_INACTIVE_TIMEOUT
    # Messages: how long one that could not be sent for a NETWORK reason is retried before
    # it fails (on_message_failed).
    message_retry_period: float = DEFAULT_MESSAGE_RETRY_PERIOD
    # Calls: upload each ended call's statistics to the stats service; when to warn of
    # poor call quality (and how often calls are sampled).
    call_statistics: bool = True
    call_quality: CallQualitySettings = field(default_factory=CallQualitySettings)

    @property
    def storage_dir(self) -> Path:
        return (
            self.persistence_dir
            if self.persistence_dir is not None
            else (default_persistence_dir())
        )


def check_configuration(config: ClientConfig, capabilities: Capabilities) -> tuple[Endpoint, ...]:
    """The gateway endpoints, or ConfigurationError listing every problem found."""
    problems: list[ConfigurationProblem] = []
    endpoints: tuple[Endpoint, ...] = ()

    if not config.application_key:
        problems.append(ConfigurationProblem("application_key", "application key is missing"))
    else:
        problems.extend(
            _protocol_problem(validation.validate_application_key, config.application_key)
        )
    if config.application_secret is not None:
        problems.extend(_secret_problems(config.application_secret))
    if config.user_id is None or config.user_id == "":
        problems.append(ConfigurationProblem("user_id", "user ID is missing", "INVALID_USER_ID"))
    else:
        problems.extend(_protocol_problem(validation.validate_user_id, config.user_id))
    if not config.environment_hosts:
        problems.append(ConfigurationProblem("environment_host", "environment host is missing"))
    else:
        try:
            endpoints = parse_hosts(config.environment_hosts)
        except ValueError as exc:
            problems.append(ConfigurationProblem("environment_host", str(exc)))
    if not (capabilities.calling or capabilities.messaging):
        problems.append(
            ConfigurationProblem(
                "capabilities",
                "enable at least one of calling and messaging "
                "(set_support_calling(True) or set_support_messaging(True))",
            )
        )
    problem = _storage_problem(config.storage_dir)
    if problem:
        problems.append(ConfigurationProblem("persistence_dir", problem))
    if problems:
        raise ConfigurationError(problems)
    return endpoints


def _protocol_problem(check: Callable[[str], str], value: str) -> list[ConfigurationProblem]:
    try:
        check(value)
    except ProtocolError as exc:
        return [ConfigurationProblem(exc.field, exc.reason, exc.code_name)]
    return []


def _secret_problems(secret: str) -> list[ConfigurationProblem]:
    if not secret:
        return [
            ConfigurationProblem(
                "application_secret",
                "application secret is empty; leave it out to have the app server sign",
            )
        ]
    try:
        base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        return [
            ConfigurationProblem(
                "application_secret",
                "application secret is not base64 (copy it as the dashboard shows it)",
            )
        ]
    return []


def _storage_problem(directory: Path) -> str | None:
    """Why device credentials cannot be kept in `directory`, or None if they can."""
    probe = directory
    while not probe.exists():
        if probe.is_symlink():
            return f"{directory} is a dangling symbolic link"
        parent = probe.parent
        if parent == probe:
            break
        probe = parent
    if not probe.is_dir():
        return f"{probe} is not a directory, so {directory} cannot hold device credentials"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable, so {directory} cannot hold device credentials"
    return None
