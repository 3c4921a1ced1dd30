"""Live quality warnings of a call (the guide's call quality warnings): while a call is
established with real media, its statistics are sampled every `interval` seconds and each
kind of warning is raised (TRIGGERED) and lifted (RECOVERED) with hysteresis.

| kind | value | default: triggered at | recovered at |
|---|---|---|---|
| HIGH_RTT | round-trip time of the media path, ms | 400, 3 samples in a row | 300, 3 in a row |
| HIGH_JITTER | interarrival jitter of the audio received, ms | 30, 3 in a row | 20, 3 in a row |
| HIGH_PACKET_LOSS | audio packets lost of those expected over the last `loss_window` samples, % | 5, 2 in a row | 2, 3 in a row |
| NO_AUDIO_RECEIVED | seconds since the last audio packet arrived | 3, at once | 0 (audio again), at once |

A warning is triggered once its value reached the threshold in `trigger_samples` consecutive
samples, and recovered once it was at or below the (lower) recover threshold in
`recover_samples` consecutive samples; a sample without a value (no round trip measured yet,
no packet expected) changes nothing. The monitor here is pure: it is fed readings and says
what to tell.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field

from parley_client.call_stats import MediaReading


class QualityWarningKind(enum.Enum):
    HIGH_RTT = "HIGH_RTT"
    HIGH_JITTER = "HIGH_JITTER"
    HIGH_PACKET_LOSS = "HIGH_PACKET_LOSS"
    NO_AUDIO_RECEIVED = "NO_AUDIO_RECEIVED"


class QualityWarningEvent(enum.Enum):
    TRIGGERED = "TRIGGERED"
    RECOVERED = "RECOVERED"


@dataclass(frozen=True)
class CallQualityWarning:
    """What `CallListener.on_call_quality_warning` is told: the kind, whether it was triggered
    or recovered, the value measured (ms, %, or s by kind) and the threshold it crossed (the
    recover threshold for RECOVERED)."""

    kind: QualityWarningKind
    event: QualityWarningEvent
    value: float
    threshold: float


@dataclass(frozen=True)
class QualityRule:
    """When one kind of warning is triggered and recovered."""

    threshold: float
    recover_threshold: float
    trigger_samples: int = 1
    recover_samples: int = 1

    def problems(self, name: str) -> list[str]:
        """What is wrong with this rule (empty: nothing)."""
        found = []
        for what, value in (
            ("threshold", self.threshold),
            ("recover_threshold", self.recover_threshold),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float):
                found.append(f"{name}.{what} must be a number, not {type(value).__name__}")
            elif not math.isfinite(value) or value < 0:
                found.append(f"{name}.{what} must be a finite number of at least 0")
        if not found and self.recover_threshold > self.threshold:
            found.append(
                f"{name}.recover_threshold ({self.recover_threshold:g}) must not be above its "
                f"threshold ({self.threshold:g})"
            )
        for what, count in (
            ("trigger_samples", self.trigger_samples),
            ("recover_samples", self.recover_samples),
        ):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                found.append(f"{name}.{what} must be a whole number of at least 1")
        return found


@dataclass(frozen=True)
class CallQualitySettings:
    """How often calls are sampled and when each warning is raised (`builder.call_quality`).
    The defaults are those of the hosted SDKs."""

    interval: float = 1.0
    high_rtt: QualityRule = field(default_factory=lambda: QualityRule(400.0, 300.0, 3, 3))
    high_jitter: QualityRule = field(default_factory=lambda: QualityRule(30.0, 20.0, 3, 3))
    high_packet_loss: QualityRule = field(default_factory=lambda: QualityRule(5.0, 2.0, 2, 3))
    no_audio_received: QualityRule = field(default_factory=lambda: QualityRule(3.0, 0.0, 1, 1))
    # HIGH_PACKET_LOSS counts the packets of this many samples (the recent window).
    loss_window: int = 3

    def problems(self) -> list[str]:
        """What is wrong with these settings (empty: nothing)."""
        found = []
        interval = self.interval
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            found.append(f"interval must be a number of seconds, not {type(interval).__name__}")
        elif not math.isfinite(interval) or interval <= 0:
            found.append(f"interval must be a positive number of seconds, not {interval!r}")
        for kind in QualityWarningKind:
            rule = self.rule(kind)
            name = kind.name.lower()
            if not isinstance(rule, QualityRule):
                found.append(f"{name} must be a QualityRule, not {type(rule).__name__}")
            else:
                found.extend(rule.problems(name))
        window = self.loss_window
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            found.append("loss_window must be a whole number of samples, at least 1")
        return found

    def rule(self, kind: QualityWarningKind) -> QualityRule:
        rule: QualityRule = getattr(self, kind.name.lower())
        return rule


@dataclass
class _RuleState:
    rule: QualityRule
    active: bool = False
    run: int = 0  # consecutive samples past the threshold (or back under it, when active)

    def observe(self, value: float | None) -> QualityWarningEvent | None:
        if value is None:
            return None
        rule = self.rule
        if not self.active:
            self.run = self.run + 1 if value >= rule.threshold else 0
            if self.run >= rule.trigger_samples:
                self.active, self.run = True, 0
                return QualityWarningEvent.TRIGGERED
        else:
            self.run = self.run + 1 if value <= rule.recover_threshold else 0
            if self.run >= rule.recover_samples:
                self.active, self.run = False, 0
                return QualityWarningEvent.RECOVERED
        return None


@dataclass(frozen=True)
class QualitySample:
    """The values one sample gives each kind of warning (None: nothing to judge)."""

    rtt_ms: float | None
    jitter_ms: float | None
    loss_percent: float | None
    no_audio_seconds: float

    def value(self, kind: QualityWarningKind) -> float | None:
        if kind is QualityWarningKind.HIGH_RTT:
            return self.rtt_ms
        if kind is QualityWarningKind.HIGH_JITTER:
            return self.jitter_ms
        if kind is QualityWarningKind.HIGH_PACKET_LOSS:
            return self.loss_percent
        return self.no_audio_seconds


class QualityMonitor:
    """The warnings of one call, from its readings in order. `triggered` counts the warnings
    triggered so far, by kind name (the call's report carries it)."""

    def __init__(self, settings: CallQualitySettings) -> None:
        self._settings = settings
        self._states = {kind: _RuleState(settings.rule(kind)) for kind in QualityWarningKind}
        self._previous: MediaReading | None = None
        self._previous_source: object = None
        self._window: deque[tuple[int, int]] = deque(maxlen=settings.loss_window)
        self._silent_for = 0.0
        self.triggered: dict[str, int] = {}

    @property
    def active(self) -> frozenset[QualityWarningKind]:
        """The kinds triggered and not recovered."""
        return frozenset(kind for kind, state in self._states.items() if state.active)

    def feed(self, reading: MediaReading, source: object) -> list[CallQualityWarning]:
        """Judge a reading of the media `source` (counters restart with a new media, after a
        media restart: its first reading only sets the baseline of the deltas)."""
        sample = self._sample(reading, source)
        return self.observe(sample)

    def observe(self, sample: QualitySample) -> list[CallQualityWarning]:
        """Judge one sample; the warnings it raises or lifts, in the order of the kinds."""
        told = []
        for kind, state in self._states.items():
            value = sample.value(kind)
            event = state.observe(value)
            if event is None or value is None:
                continue
            rule = state.rule
            if event is QualityWarningEvent.TRIGGERED:
                self.triggered[kind.name] = self.triggered.get(kind.name, 0) + 1
                threshold = rule.threshold
            else:
                threshold = rule.recover_threshold
            told.append(CallQualityWarning(kind, event, value, threshold))
        return told

    def _sample(self, reading: MediaReading, source: object) -> QualitySample:
        previous = self._previous if source is self._previous_source else None
        self._previous, self._previous_source = reading, source
        loss: float | None = None
        if previous is not None:
            received = reading.packets_received - previous.packets_received
            lost = reading.packets_lost - previous.packets_lost
            self._window.append((max(received, 0), lost))
            if received > 0:
                self._silent_for = 0.0
            else:
                self._silent_for += max(0.0, reading.at - previous.at)
            window_received = sum(r for r, _ in self._window)
            window_lost = max(0, sum(lost for _, lost in self._window))
            expected = window_received + window_lost
            if expected > 0:
                loss = 100.0 * window_lost / expected
        return QualitySample(
            rtt_ms=reading.rtt_ms,
            jitter_ms=reading.jitter_ms if reading.packets_received > 0 else None,
            loss_percent=loss,
            no_audio_seconds=self._silent_for,
        )
