"""What a load test runs: a scenario, as plain dataclasses (read and checked by `validate`).

Every field has a default, so a scenario file names only what it changes; `to_dict()` gives
the exact parameters a report records (the application secret left out).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEST_NUMBER = "+46000000000"


@dataclass
class Target:
    """The environment under load: its host(s) (several: gateway replicas) and the
    application whose key and secret the simulated clients self-sign with."""

    hosts: list[str] = field(default_factory=lambda: ["localhost:8080"])
    application_key: str = ""  # "" : from PARLEY_APPLICATION_KEY
    application_secret: str = ""  # "" : from PARLEY_APPLICATION_SECRET
    # Where device credentials are kept between runs ("" : a folder per application under
    # ~/.local/share/parley-loadtest), so a rerun does not register every user again.
    state_dir: str = ""
    # The addresses media calls offer as ICE host candidates; empty: 127.0.0.1 when every
    # host is on this machine, otherwise every address but loopback.
    ice_host_addresses: list[str] = field(default_factory=list)


@dataclass
class Calls:
    """App-to-app calls: a caller calls a callee of the same worker, which answers at once;
    the caller hangs up after `hold_seconds`. A `media_share` of them use aiortc with a tone."""

    per_second: float = 0.0
    media_share: float = 0.0
    hold_seconds: float = 1.0
    timeout_seconds: float = 15.0  # set-up longer than this is a failed call


@dataclass
class Messages:
    """Instant messages from a random user to another random user (any worker)."""

    per_second: float = 0.0


@dataclass
class Conferences:
    """Joins of conference rooms (media clients with a tone), `room_size` joins a room."""

    joins_per_second: float = 0.0
    room_size: int = 3
    hold_seconds: float = 2.0
    timeout_seconds: float = 15.0


@dataclass
class PhoneCalls:
    """Calls to the test number (media clients with a tone); hung up after `hold_seconds`."""

    per_second: float = 0.0
    number: str = TEST_NUMBER
    hold_seconds: float = 2.0
    timeout_seconds: float = 15.0


@dataclass
class Kill:
    """How the storm kills a gateway replica: a shell `command` (e.g. `kubectl delete pod
    ...`) or a `pid_file` whose process gets SIGKILL. Tests pass a callable instead."""

    command: str = ""
    pid_file: str = ""


@dataclass
class Storm:
    """Kill one gateway replica `after_seconds` into the traffic phase, then measure how long
    until every client is connected again, and who gave up within `timeout_seconds`."""

    enabled: bool = False
    after_seconds: float = 2.0
    timeout_seconds: float = 60.0
    kill: Kill = field(default_factory=Kill)


# SLO lines: the figure each one bounds from above (every SLO is "at most").
SLO_FIGURES: dict[str, str] = {
    "message_latency_p50_ms": "message_latency_p50_ms",
    "message_latency_p99_ms": "message_latency_p99_ms",
    "call_setup_p50_ms": "call_setup_p50_ms",
    "call_setup_p99_ms": "call_setup_p99_ms",
    "conference_join_p99_ms": "conference_join_p99_ms",
    "phone_call_setup_p99_ms": "phone_call_setup_p99_ms",
    "connect_p99_ms": "connect_p99_ms",
    "loss": "loss",
    "duplicates": "duplicates",
    "errors": "errors",
    "failed_calls": "calls_failed",
    "unaccepted_messages": "messages_unaccepted",
    "reconnect_seconds_max": "storm_reconnect_seconds_max",
    "gave_up": "storm_gave_up",
    "not_connected": "clients_not_connected",
}


@dataclass
class Scenario:
    name: str = "adhoc"
    target: Target = field(default_factory=Target)
    users: int = 10
    user_prefix: str = "load"
    ramp_up_per_second: float = 50.0  # clients started per second
    duration_seconds: float = 10.0  # of the traffic phase
    grace_seconds: float = 10.0  # at most this long afterwards for late arrivals
    workers: int = 1
    calls: Calls = field(default_factory=Calls)
    messages: Messages = field(default_factory=Messages)
    conferences: Conferences = field(default_factory=Conferences)
    phone_calls: PhoneCalls = field(default_factory=PhoneCalls)
    storm: Storm = field(default_factory=Storm)
    slo: dict[str, float] = field(default_factory=dict)
    source: str = ""  # the file it was read from, if any

    def to_dict(self) -> dict[str, Any]:
        """The exact parameters, for reports (the secret is never written out)."""
        data = dataclasses.asdict(self)
        data["target"]["application_secret"] = "***" if self.target.application_secret else ""
        return data

    @property
    def state_path(self) -> Path:
        if self.target.state_dir:
            return Path(self.target.state_dir).expanduser()
        key = self.target.application_key or "unknown"
        return Path.home() / ".local" / "share" / "parley-loadtest" / key
