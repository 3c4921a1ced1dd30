"""The pure parts of call quality: the E-model MOS, the warning monitor's hysteresis fed with
synthetic samples and readings, the settings' checks, and audio levels."""

from __future__ import annotations

import array
import math
from typing import Any

import pytest

from parley_client import (
    CallQualitySettings,
    ConfigurationError,
    ParleyClient,
    QualityRule,
    QualityWarningEvent,
    QualityWarningKind,
)
from parley_client.audio_level import LevelMeter, frame_level
from parley_client.call_stats import MediaReading
from parley_client.mos import delay_impairment, loss_impairment, mos, mos_from_r, r_factor
from parley_client.quality import QualityMonitor, QualitySample

TRIGGERED, RECOVERED = QualityWarningEvent.TRIGGERED, QualityWarningEvent.RECOVERED
HIGH_RTT = QualityWarningKind.HIGH_RTT
HIGH_JITTER = QualityWarningKind.HIGH_JITTER
HIGH_PACKET_LOSS = QualityWarningKind.HIGH_PACKET_LOSS
NO_AUDIO = QualityWarningKind.NO_AUDIO_RECEIVED

# -- MOS -------------------------------------------------------------------------------------


def test_a_clean_short_path_scores_about_4_4() -> None:
    assert mos(20, 0, 0) == pytest.approx(4.4, abs=0.02)
    assert mos(0, 0, 0) == pytest.approx(4.41, abs=0.02)  # the E-model's best, R = 93.2


def test_loss_lowers_the_score() -> None:
    clean = mos(20, 0, 0)
    five = mos(20, 0, 5)
    ten = mos(20, 0, 10)
    assert clean > five > ten
    assert five == pytest.approx(3.90, abs=0.02)  # Ie_eff = 95 * 5 / (5 + 25.1)
    assert loss_impairment(5) == pytest.approx(95 * 5 / 30.1)


def test_delay_and_jitter_lower_the_score() -> None:
    assert mos(400, 0, 0) < mos(20, 0, 0)
    assert mos(800, 0, 0) < mos(400, 0, 0)
    assert mos(20, 40, 0) < mos(20, 0, 0)  # jitter counts twice in the latency
    # Beyond 177.3 ms of effective latency the delay impairment steepens.
    assert delay_impairment(177.3) == pytest.approx(0.024 * 177.3)
    assert delay_impairment(277.3) == pytest.approx(0.024 * 277.3 + 0.11 * 100)
    assert r_factor(400, 0, 0) == pytest.approx(93.2 - delay_impairment(210))


def test_the_score_stays_within_1_and_4_5() -> None:
    assert mos_from_r(-10) == 1.0 and mos_from_r(0) == 1.0
    assert mos_from_r(100) == 4.5 and mos_from_r(120) == 4.5
    assert 1.0 <= mos(5000, 500, 100) <= 1.2
    for r in range(0, 101, 5):
        assert 1.0 <= mos_from_r(r) <= 4.5


@pytest.mark.parametrize(
    ("rtt", "jitter", "loss", "reason"),
    [
        (-1, 0, 0, "rtt_ms"),
        (0, math.nan, 0, "jitter_ms"),
        (0, 0, math.inf, "loss"),
        (0, 0, 101, "percentage"),
    ],
)
def test_bad_inputs_are_refused(rtt: float, jitter: float, loss: float, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        mos(rtt, jitter, loss)


# -- the monitor: samples ---------------------------------------------------------------------


def sample(
    rtt: float | None = 20.0,
    jitter: float | None = 1.0,
    loss: float | None = 0.0,
    silent: float = 0.0,
) -> QualitySample:
    return QualitySample(rtt_ms=rtt, jitter_ms=jitter, loss_percent=loss, no_audio_seconds=silent)


def events(monitor: QualityMonitor, *samples: QualitySample) -> list[tuple[str, str, float]]:
    told = []
    for s in samples:
        told.extend((w.kind.name, w.event.name, w.threshold) for w in monitor.observe(s))
    return told


def test_high_rtt_triggers_after_three_samples_in_a_row_and_recovers_below_300() -> None:
    monitor = QualityMonitor(CallQualitySettings())
    # Two high samples, then a good one: the run starts again.
    assert events(monitor, sample(rtt=450), sample(rtt=500), sample(rtt=100)) == []
    assert events(monitor, sample(rtt=400), sample(rtt=420)) == []
    [warning] = monitor.observe(sample(rtt=410))
    assert (warning.kind, warning.event, warning.value, warning.threshold) == (
        HIGH_RTT,
        TRIGGERED,
        410,
        400,
    )
    assert monitor.active == {HIGH_RTT}
    # Below the threshold but above the recover threshold: still active (hysteresis).
    assert events(monitor, *[sample(rtt=350)] * 5) == []
    assert events(monitor, sample(rtt=250), sample(rtt=250), sample(rtt=350)) == []
    assert events(monitor, sample(rtt=300), sample(rtt=200)) == []
    assert events(monitor, sample(rtt=100)) == [("HIGH_RTT", "RECOVERED", 300)]
    assert monitor.active == frozenset()
    assert events(monitor, *[sample(rtt=900)] * 3) == [("HIGH_RTT", "TRIGGERED", 400)]
    assert monitor.triggered == {"HIGH_RTT": 2}


def test_samples_without_a_value_change_nothing() -> None:
    monitor = QualityMonitor(CallQualitySettings())
    told = events(
        monitor,
        sample(rtt=500),
        sample(rtt=None),  # no round trip measured: the run goes on
        sample(rtt=500),
        sample(rtt=500),
    )
    assert told == [("HIGH_RTT", "TRIGGERED", 400)]
    assert events(monitor, sample(rtt=None), sample(rtt=None), sample(rtt=None)) == []
    assert monitor.active == {HIGH_RTT}


def test_each_kind_has_its_own_rule() -> None:
    monitor = QualityMonitor(CallQualitySettings())
    told = events(
        monitor,
        sample(jitter=31, loss=6, silent=3.0),
        sample(jitter=31, loss=6, silent=3.2),
        sample(jitter=31, loss=1, silent=0.0),
    )
    assert told == [
        ("NO_AUDIO_RECEIVED", "TRIGGERED", 3.0),  # at once
        ("HIGH_PACKET_LOSS", "TRIGGERED", 5.0),  # two in a row
        ("HIGH_JITTER", "TRIGGERED", 30.0),  # three in a row
        ("NO_AUDIO_RECEIVED", "RECOVERED", 0.0),  # audio again
    ]
    assert events(monitor, sample(loss=1), sample(loss=1)) == [
        ("HIGH_PACKET_LOSS", "RECOVERED", 2.0)
    ]
    assert monitor.triggered == {"NO_AUDIO_RECEIVED": 1, "HIGH_PACKET_LOSS": 1, "HIGH_JITTER": 1}


def test_rules_are_configurable() -> None:
    settings = CallQualitySettings(high_rtt=QualityRule(100, 50, trigger_samples=1))
    monitor = QualityMonitor(settings)
    assert events(monitor, sample(rtt=120)) == [("HIGH_RTT", "TRIGGERED", 100)]
    assert events(monitor, sample(rtt=60)) == []
    assert events(monitor, sample(rtt=50)) == [("HIGH_RTT", "RECOVERED", 50)]


# -- the monitor: readings (counters to windows) -------------------------------------------------


def reading(at: float, received: int, lost: int, rtt: float | None = 10.0) -> MediaReading:
    return MediaReading(
        at=at, packets_received=received, packets_lost=lost, jitter_ms=2.0, rtt_ms=rtt
    )


def test_loss_is_judged_over_the_recent_window_not_the_whole_call() -> None:
    monitor = QualityMonitor(CallQualitySettings(loss_window=2))
    media = object()
    told: list[tuple[str, str]] = []

    def feed(at: float, received: int, lost: int) -> None:
        told.extend(
            (w.kind.name, w.event.name) for w in monitor.feed(reading(at, received, lost), media)
        )

    # A long clean call: 50 packets a second.
    for second in range(60):
        feed(second, 50 * second, 0)
    # Two seconds losing 10 of 50: 20 % over the window, though 0.7 % of the whole call.
    feed(60, 3040, 10)
    feed(61, 3080, 20)
    assert told == [("HIGH_PACKET_LOSS", "TRIGGERED")]
    # Clean again: the window forgets the loss within its two samples, then three good ones.
    for second in range(62, 67):
        feed(second, 3080 + 50 * (second - 61), 20)
    assert told == [("HIGH_PACKET_LOSS", "TRIGGERED"), ("HIGH_PACKET_LOSS", "RECOVERED")]


def test_no_audio_counts_the_seconds_without_a_packet() -> None:
    monitor = QualityMonitor(CallQualitySettings(interval=0.5))
    media = object()
    kinds = []
    received = 0
    at = 0.0
    for step in range(20):  # packets for 2 s, none for 4 s, then packets again
        at = step * 0.5
        if step < 4 or step >= 12:
            received += 25
        for w in monitor.feed(reading(at, received, 0), media):
            kinds.append((w.kind.name, w.event.name, at, round(w.value, 1)))
    assert kinds == [
        ("NO_AUDIO_RECEIVED", "TRIGGERED", 4.5, 3.0),  # 1.5 s was the last packet's sample
        ("NO_AUDIO_RECEIVED", "RECOVERED", 6.0, 0.0),
    ]


def test_a_new_peer_connection_starts_the_counters_again() -> None:
    monitor = QualityMonitor(CallQualitySettings(loss_window=1))
    old, new = object(), object()
    assert monitor.feed(reading(0, 1000, 0), old) == []
    assert monitor.feed(reading(1, 1050, 0), old) == []
    # The new connection counts from 0: no delta against the old one's counters.
    assert monitor.feed(reading(2, 10, 0), new) == []
    assert monitor.feed(reading(3, 60, 0), new) == []
    assert monitor.feed(reading(4, 100, 10), new) == []  # 20 %: the first of two
    [warning] = monitor.feed(reading(5, 140, 20), new)
    assert (warning.kind, warning.event, warning.value) == (HIGH_PACKET_LOSS, TRIGGERED, 20.0)


# -- settings ------------------------------------------------------------------------------------


def test_settings_are_checked_by_the_builder() -> None:
    builder = ParleyClient.builder()
    good = CallQualitySettings(interval=0.2, high_jitter=QualityRule(50, 40, 2, 2))
    assert builder.call_quality(good).config.call_quality == good
    assert ParleyClient.builder().config.call_quality == CallQualitySettings()
    bad = CallQualitySettings(
        interval=0,
        high_rtt=QualityRule(100, 200),
        high_packet_loss=QualityRule(5, 2, trigger_samples=0),
        loss_window=0,
    )
    with pytest.raises(ConfigurationError) as info:
        builder.call_quality(bad)
    reasons = [problem.reason for problem in info.value.problems]
    assert set(info.value.fields) == {"call_quality"}
    assert reasons == [
        "interval must be a positive number of seconds, not 0",
        "high_rtt.recover_threshold (200) must not be above its threshold (100)",
        "high_packet_loss.trigger_samples must be a whole number of at least 1",
        "loss_window must be a whole number of samples, at least 1",
    ]
    with pytest.raises(ConfigurationError, match="must be a CallQualitySettings"):
        builder.call_quality({"interval": 1})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="must be a finite number"):
        builder.call_quality(CallQualitySettings(high_jitter=QualityRule(math.inf, 1)))
    with pytest.raises(ConfigurationError, match="call_statistics: must be True or False"):
        builder.call_statistics("no")  # type: ignore[arg-type]
    assert not builder.call_statistics(False).config.call_statistics


# -- audio levels --------------------------------------------------------------------------------


class FakeFrame:
    """What the level meter reads of an av AudioFrame."""

    def __init__(self, samples: list[int], channels: int = 1, fmt: str = "s16") -> None:
        self.samples = len(samples) // channels
        self.format = type("F", (), {"name": fmt})()
        self.layout = type("L", (), {"channels": [0] * channels})()
        self.planes = [array.array("h", samples).tobytes() + b"\0\0"]  # padded, as av pads


def test_frame_levels_are_rms_of_full_scale() -> None:
    assert frame_level(FakeFrame([0] * 960)) == 0.0
    assert frame_level(FakeFrame([16384, -16384] * 480, channels=2)) == pytest.approx(0.5)
    square: Any = FakeFrame([32767, -32768] * 480)
    assert frame_level(square) == pytest.approx(1.0, abs=1e-4)
    assert frame_level(FakeFrame([1, 2], fmt="fltp")) is None  # not measured


def test_the_meter_measures_one_frame_in_every() -> None:
    meter = LevelMeter(every=5)
    for index in range(10):  # frames 0 and 5 are measured: loud, then silent
        meter.frame(FakeFrame([16384, -16384] * 480 if index < 5 else [0] * 960))
    tally = meter.tally()
    assert tally.count == 2 and tally.mean == pytest.approx(0.25)
