"""The mixer's counts (`MixerStats`) and their Prometheus export.

The mixer only adds to plain integers as it ticks (a Prometheus counter's lock on every
frame would cost more than some of the work it counts); `MixerCollector` reads them when
the metrics are scraped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, CollectorRegistry


@dataclass
class MixerStats:
    """What the mixer did since it was made (all counts only grow)."""

    ticks: int = 0  # 20 ms steps run
    skipped_ticks: int = 0  # steps left out to catch up after falling behind
    frames_sent: int = 0  # packets handed to participants' tracks
    # Frames handed over after the next tick was due, and the frames of skipped ticks.
    late_frames: int = 0
    decoded: int = 0  # packets decoded
    quiet_skipped: int = 0  # packets taken as silent without decoding (see inbox.Received)
    unmixed_skipped: int = 0  # packets not decoded: every place in the mix was held
    concealed: int = 0  # frames concealed (a participant's packet late or lost)
    encoded: int = 0  # packets encoded: a room's shared mix, a speaker's own
    shared_encoded: int = 0  # ... of which a room's mix for all its non-speakers
    silent_sent: int = 0  # frames sent as the cached silent packet (nothing to hear)
    forwarded: int = 0  # a lone speaker's packet sent on as it came, with no encode
    limited: int = 0  # mixes the limiter had to turn down
    errors: int = 0  # rooms whose step failed (logged)
    busy_seconds: float = 0.0  # time spent mixing


class MixerView(Protocol):
    @property
    def stats(self) -> MixerStats: ...

    def rooms(self) -> int: ...

    def participants(self) -> int: ...


_HELP = {
    "ticks": "Mixer steps run (one every 20 ms).",
    "skipped_ticks": "Mixer steps skipped to catch up after falling behind.",
    "frames_sent": "Audio frames handed to participants.",
    "late_frames": "Audio frames handed to participants after the next step was due, or skipped.",
    "decoded": "Participants' packets decoded.",
    "quiet_skipped": "Participants' packets taken as silence without decoding.",
    "unmixed_skipped": "Participants' packets not decoded while every place in the mix was held.",
    "concealed": "Participants' frames concealed (packet late or lost).",
    "encoded": "Packets encoded (a room's mix for its listeners, a speaker's own mix).",
    "shared_encoded": "Packets encoded once for all of a room's listeners who are not speaking.",
    "silent_sent": "Frames sent as the cached silent packet.",
    "forwarded": "Mixes sent as a lone speaker's own packet, with no encode.",
    "limited": "Mixes the limiter turned down.",
    "errors": "Room steps that failed.",
    "busy_seconds": "Seconds spent mixing.",
}


class MixerCollector:
    """Exports a mixer's stats, rooms and participants when scraped."""

    def __init__(self, mixer: MixerView) -> None:
        self._mixer = mixer

    def collect(self) -> Iterator[Metric]:
        stats = self._mixer.stats
        for field in fields(stats):
            yield CounterMetricFamily(
                f"parley_conference_mixer_{field.name}",
                _HELP[field.name],
                value=getattr(stats, field.name),
            )
        yield GaugeMetricFamily(
            "parley_conference_rooms", "Rooms this replica mixes.", value=self._mixer.rooms()
        )
        yield GaugeMetricFamily(
            "parley_conference_participants",
            "Participants of the rooms this replica mixes.",
            value=self._mixer.participants(),
        )

    def describe(self) -> Iterator[Metric]:
        return iter(())  # nothing collected at registration: the mixer may not run yet


def register(mixer: MixerView, registry: CollectorRegistry = REGISTRY) -> MixerCollector:
    """Export `mixer`'s figures with the process's metrics (once per mixer)."""
    collector = MixerCollector(mixer)
    registry.register(collector)
    return collector
