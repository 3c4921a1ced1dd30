"""The engine's count of what the workers saw: clients and their connections, messages and
calls by their markers, errors, a storm's reconnections, and a series per second.

Loss is a message the service accepted (`on_message_sent`) that never reached its
recipient; a duplicate is a message or an incoming call that arrived more than once;
latency is arrival minus the send time the marker carries (one machine, one clock).
Latencies go into HdrHistograms (microseconds): one per kind for the run, and one per kind
and second for the rolling p50/p99 of the series.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from parley_loadtest.events import CALL_KINDS, Event

# Latencies up to an hour, 3 significant digits for the run, 2 for a second's.
_LOWEST_US, _HIGHEST_US = 1, 3_600_000_000
ERROR_SAMPLES = 20
# A second's histograms are closed (their percentiles taken) this long after it ended.
SECOND_CLOSE_DELAY = 3


def _histogram(digits: int = 3) -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, digits)


def _record(histogram: HdrHistogram, seconds: float) -> None:
    micros = min(_HIGHEST_US, max(_LOWEST_US, round(seconds * 1_000_000)))
    histogram.record_value(micros)


def _ms(histogram: HdrHistogram, percentile: float) -> float | None:
    if histogram.get_total_count() == 0:
        return None
    value: int = histogram.get_value_at_percentile(percentile)
    return round(value / 1000, 2)


@dataclass
class _Second:
    """What happened in one second of the run."""

    connected: int = 0
    messages_sent: int = 0
    messages_arrived: int = 0
    calls_established: int = 0
    errors: int = 0
    latency: dict[str, HdrHistogram] = field(default_factory=dict)  # kind -> histogram
    percentiles: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def record(self, kind: str, seconds: float) -> None:
        histogram = self.latency.get(kind)
        if histogram is None:
            histogram = self.latency[kind] = _histogram(2)
        _record(histogram, seconds)

    def close(self) -> None:
        for kind, histogram in self.latency.items():
            self.percentiles[kind] = (_ms(histogram, 50), _ms(histogram, 99))
        self.latency.clear()


@dataclass
class _Calls:
    placed: set[int] = field(default_factory=set)
    established: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)
    ended: collections.Counter[str] = field(default_factory=collections.Counter)
    setup: HdrHistogram = field(default_factory=_histogram)


class Tally:
    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        # clients
        self.state: dict[str, str] = {}  # user -> "up", "down" or "failed"
        self.gateway: dict[str, str] = {}
        self.started: set[str] = set()
        self.start_failed: dict[str, str] = {}
        self.connect = _histogram()
        self.connected = 0
        # messages
        self.sent: set[int] = set()
        self.send_failed: dict[int, str] = {}
        self.accepted: set[int] = set()
        self.failed: dict[int, str] = {}
        self.arrivals: collections.Counter[int] = collections.Counter()
        self.message_latency = _histogram()
        self.stale: collections.Counter[str] = collections.Counter()
        # calls, by kind; incoming calls (app-to-app) by seq
        self.calls: dict[str, _Calls] = {kind: _Calls() for kind in CALL_KINDS}
        self.incoming: collections.Counter[int] = collections.Counter()
        self.incoming_latency = _histogram()
        # errors
        self.errors = 0
        self.error_samples: list[str] = []
        self.error_kinds: collections.Counter[str] = collections.Counter()
        # storm
        self.kill_at: float | None = None
        self.kill_done_at: float | None = None
        self.kill_error = ""
        self.gateways_at_kill: dict[str, int] = {}
        self.gateway_at_kill: dict[str, str] = {}  # user -> the replica it was on
        self.down_at: dict[str, float] = {}  # user -> when it lost its connection (storm)
        self.back_at: dict[str, float] = {}  # user -> when it was connected again
        self.storm_gave_up: set[str] = set()
        self.storm_over_at: float | None = None
        # the series
        self.seconds: dict[int, _Second] = {}
        self.marks: list[tuple[float, str]] = []  # (seconds into the run, what happened)
        self.not_connected_at_end: list[str] | None = None

    # -- events ------------------------------------------------------------------------------

    def second(self, at: float) -> _Second:
        index = max(0, int(at - self.started_at))
        entry = self.seconds.get(index)
        if entry is None:
            entry = self.seconds[index] = _Second(connected=self.connected)
        return entry

    def mark(self, at: float, what: str) -> None:
        self.marks.append((round(at - self.started_at, 3), what))

    def error(self, at: float, kind: str, text: str) -> None:
        self.errors += 1
        self.error_kinds[kind] += 1
        self.second(at).errors += 1
        if len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(f"{kind}: {text}")

    def add(self, event: Event) -> None:
        kind, at = event[0], float(event[1])
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            self.error(at, "engine", f"an event of unknown kind {kind!r}")
            return
        handler(at, *event[2:])

    def _on_started(self, at: float, user: str, seconds: float) -> None:
        self.started.add(user)
        _record(self.connect, seconds)

    def _on_start_failed(self, at: float, user: str, error: str) -> None:
        self.start_failed[user] = error
        self.error(at, "start", f"{user}: {error}")

    def _on_connected(self, at: float, user: str, gateway: str, reconnected: bool) -> None:
        if self.state.get(user) != "up":
            self.connected += 1
        self.state[user] = "up"
        self.gateway[user] = gateway
        if user in self.down_at and user not in self.back_at:
            self.back_at[user] = at
        self.second(at).connected = self.connected

    def _on_disconnected(self, at: float, user: str, reason: str) -> None:
        if self.state.get(user) == "up":
            self.connected -= 1
            self.state[user] = "down"
            if self.kill_at is not None and user not in self.down_at:
                self.down_at[user] = at
                self.back_at.pop(user, None)
        self.second(at).connected = self.connected

    def _on_client_failed(self, at: float, user: str, error: str) -> None:
        if self.state.get(user) == "up":
            self.connected -= 1
        self.state[user] = "failed"
        if user in self.started:  # a failed start is counted as start_failed already
            self.error(at, "client", f"{user}: {error}")
        self.second(at).connected = self.connected

    def _on_msg_sent(self, at: float, seq: int) -> None:
        self.sent.add(seq)
        self.second(at).messages_sent += 1

    def _on_msg_send_failed(self, at: float, seq: int, error: str) -> None:
        self.sent.add(seq)
        self.send_failed[seq] = error
        self.error(at, "message", error)

    def _on_msg_accepted(self, at: float, seq: int) -> None:
        self.accepted.add(seq)

    def _on_msg_failed(self, at: float, seq: int, error: str) -> None:
        self.failed[seq] = error
        self.error(at, "message", error)

    def _on_msg_arrived(self, at: float, seq: int, seconds: float) -> None:
        self.arrivals[seq] += 1
        if self.arrivals[seq] == 1:
            _record(self.message_latency, seconds)
            entry = self.second(at)
            entry.messages_arrived += 1
            entry.record("message", seconds)

    def _on_stale(self, at: float, what: str) -> None:
        self.stale[what] += 1

    def _on_call_placed(self, at: float, kind: str, seq: int) -> None:
        self.calls[kind].placed.add(seq)

    def _on_call_arrived(self, at: float, seq: int, seconds: float) -> None:
        self.incoming[seq] += 1
        if self.incoming[seq] == 1:
            _record(self.incoming_latency, seconds)

    def _on_call_established(self, at: float, kind: str, seq: int, seconds: float) -> None:
        calls = self.calls[kind]
        calls.established.add(seq)
        _record(calls.setup, seconds)
        entry = self.second(at)
        entry.calls_established += 1
        entry.record(kind, seconds)

    def _on_call_failed(self, at: float, kind: str, seq: int, error: str) -> None:
        self.calls[kind].failed[seq] = error
        self.error(at, kind, error)

    def _on_call_ended(self, at: float, kind: str, seq: int, cause: str) -> None:
        self.calls[kind].ended[cause] += 1

    def _on_error(self, at: float, text: str) -> None:
        self.error(at, "worker", text)

    # -- the storm ---------------------------------------------------------------------------

    def storm_kill(self, at: float) -> None:
        self.kill_at = at
        self.gateway_at_kill = {u: self.gateway[u] for u in self.up()}
        self.gateways_at_kill = dict(collections.Counter(self.gateway_at_kill.values()))
        self.mark(at, "gateway replica killed")

    def up(self) -> list[str]:
        return [u for u, s in self.state.items() if s == "up"]

    def storm_settled(self) -> bool:
        """Every client that was on a replica the storm took down (one whose clients lost
        their connections) lost its connection and is connected again (or failed), and every
        started client is connected. (A worker's events come in batches: the clients of
        one that has not told its losses yet are not taken for back.)"""
        if not self.down_at:
            return False
        victims = {self.gateway_at_kill.get(u) for u in self.down_at}
        for user, gateway in self.gateway_at_kill.items():
            if gateway in victims and user not in self.back_at:
                if self.state.get(user) != "failed":
                    return False
        back = all(u in self.back_at or self.state.get(u) == "failed" for u in self.down_at)
        return back and all(self.state.get(u) in ("up", "failed") for u in self.started)

    def storm_end(self, at: float) -> None:
        self.storm_over_at = at
        self.storm_gave_up = {u for u in self.down_at if u not in self.back_at}
        self.mark(at, "storm over")

    # -- settling ----------------------------------------------------------------------------

    def pending_messages(self) -> int:
        """Messages neither accepted nor failed yet, and accepted ones not arrived yet."""
        open_ = len(self.sent) - len(self.accepted | set(self.failed) | set(self.send_failed))
        missing = sum(1 for seq in self.accepted if seq not in self.arrivals)
        return max(0, open_) + missing

    def tick(self, now: float) -> None:
        """Record the connected count for this second; close seconds old enough."""
        self.second(now).connected = self.connected
        limit = int(now - self.started_at) - SECOND_CLOSE_DELAY
        for index, entry in self.seconds.items():
            if index < limit and entry.latency:
                entry.close()

    def rolling(self, now: float, kind: str, window: int = 5) -> tuple[float | None, float | None]:
        """p50 and p99 (ms) of `kind` over the last `window` whole seconds."""
        merged = _histogram(2)
        last = int(now - self.started_at) - 1
        for index in range(last - window + 1, last + 1):
            entry = self.seconds.get(index)
            if entry is not None and kind in entry.latency:
                merged.add(entry.latency[kind])
        return _ms(merged, 50), _ms(merged, 99)

    # -- figures -----------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        """Every figure of the run, by name (None where nothing was measured)."""
        arrived = set(self.arrivals)
        lost = self.accepted - arrived
        dup_messages = sum(1 for n in self.arrivals.values() if n > 1)
        dup_calls = sum(1 for n in self.incoming.values() if n > 1)
        settled = self.accepted | set(self.failed) | set(self.send_failed)
        figures: dict[str, Any] = {
            "clients_started": len(self.started),
            "clients_start_failed": len(self.start_failed),
            "clients_not_connected": (
                len(self.not_connected_at_end) if self.not_connected_at_end is not None else None
            ),
            "connect_p50_ms": _ms(self.connect, 50),
            "connect_p99_ms": _ms(self.connect, 99),
            "messages_sent": len(self.sent),
            "messages_accepted": len(self.accepted),
            "messages_failed": len(set(self.failed) | set(self.send_failed)),
            "messages_unaccepted": len(self.sent - settled),
            "messages_delivered": len(arrived & self.sent),
            "messages_lost": len(lost),
            "messages_duplicates": dup_messages,
            "messages_stale": self.stale["message"],
            "message_latency_p50_ms": _ms(self.message_latency, 50),
            "message_latency_p90_ms": _ms(self.message_latency, 90),
            "message_latency_p99_ms": _ms(self.message_latency, 99),
            "message_latency_max_ms": _ms(self.message_latency, 100),
            "calls_incoming": len(self.incoming),
            "calls_duplicates": dup_calls,
            "incoming_call_p50_ms": _ms(self.incoming_latency, 50),
            "incoming_call_p99_ms": _ms(self.incoming_latency, 99),
        }
        names = {
            "call": "call",
            "media_call": "media_call",
            "conference": "conference_join",
            "phone": "phone_call",
        }
        failed_calls = 0
        for kind, calls in self.calls.items():
            name = names[kind]
            plural = "conference_joins" if kind == "conference" else f"{name}s"
            figures[f"{plural}_placed"] = len(calls.placed)
            figures[f"{plural}_set_up"] = len(calls.established)
            figures[f"{plural}_failed"] = len(calls.failed)
            failed_calls += len(calls.failed)
            label = "join" if kind == "conference" else "setup"
            prefix = "conference" if kind == "conference" else name
            figures[f"{prefix}_{label}_p50_ms"] = _ms(calls.setup, 50)
            figures[f"{prefix}_{label}_p99_ms"] = _ms(calls.setup, 99)
        figures["calls_failed"] = failed_calls
        figures["loss"] = len(lost)
        figures["duplicates"] = dup_messages + dup_calls
        figures["errors"] = self.errors
        if self.kill_at is not None:
            figures.update(self._storm_figures())
        return figures

    def _storm_figures(self) -> dict[str, Any]:
        assert self.kill_at is not None
        kill_at = self.kill_at
        times = sorted(self.back_at[u] - kill_at for u in self.down_at if u in self.back_at)
        gave_up = self.storm_gave_up if self.storm_over_at is not None else set()
        all_back = bool(self.down_at) and not gave_up and len(times) == len(self.down_at)

        def at(pct: float) -> float | None:
            if not times:
                return None
            return round(times[min(len(times) - 1, math.ceil(pct / 100 * len(times)) - 1)], 3)

        victims = set(self.gateways_at_kill) - set(self.gateway[u] for u in self.up())
        noticed = sorted(at - kill_at for at in self.down_at.values())
        return {
            # how long after the kill the clients saw their connection go (the last one)
            "storm_noticed_seconds_max": round(noticed[-1], 3) if noticed else None,
            "storm_clients_at_kill": sum(self.gateways_at_kill.values()),
            "storm_clients_affected": len(self.down_at),
            "storm_clients_back": len(times),
            "storm_gave_up": len(gave_up),
            "storm_reconnect_seconds_p50": at(50),
            "storm_reconnect_seconds_p99": at(99),
            "storm_reconnect_seconds_max": round(times[-1], 3) if all_back else None,
            "storm_kill_seconds": (
                round(self.kill_done_at - kill_at, 3) if self.kill_done_at is not None else None
            ),
            "storm_clients_on_killed_replica": sum(
                1 for u in self.up() if self.gateway.get(u) in victims
            ),
        }

    def outcome(self) -> dict[str, Any]:
        """What the run measured, as build_report takes it: figures, series, marks, storm
        details and errors."""
        return {
            "figures": self.figures(),
            "series": self.series(),
            "marks": self.marks,
            "storm": self.storm_details(),
            "errors": {
                "count": self.errors,
                "by_kind": dict(self.error_kinds),
                "samples": self.error_samples,
            },
        }

    def storm_details(self) -> dict[str, Any]:
        """What the storm was about, besides its figures: the replicas before and after."""
        if self.kill_at is None:
            return {}
        after = dict(collections.Counter(self.gateway[u] for u in self.up()))
        return {
            "kill_at_seconds": round(self.kill_at - self.started_at, 3),
            "kill_error": self.kill_error,
            "gateways_at_kill": self.gateways_at_kill,
            "gateways_at_end": after,
            "gave_up_users": sorted(self.storm_gave_up)[:50],
        }

    def series(self) -> dict[str, list[Any]]:
        """One value per second of the run, for the report's charts."""
        if not self.seconds:
            return {"t": []}
        last = max(self.seconds)
        out: dict[str, list[Any]] = collections.defaultdict(list)
        connected = 0
        for index in range(last + 1):
            entry = self.seconds.get(index)
            if entry is None:
                entry = _Second(connected=connected)
            if entry.latency:
                entry.close()
            connected = entry.connected
            out["t"].append(index)
            out["connected"].append(entry.connected)
            out["messages_sent"].append(entry.messages_sent)
            out["messages_arrived"].append(entry.messages_arrived)
            out["calls_established"].append(entry.calls_established)
            out["errors"].append(entry.errors)
            for kind in ("message", *CALL_KINDS):
                p50, p99 = entry.percentiles.get(kind, (None, None))
                out[f"{kind}_p50_ms"].append(p50)
                out[f"{kind}_p99_ms"].append(p99)
        return dict(out)
