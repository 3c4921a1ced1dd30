"""Live call quality warnings end to end: two reference clients in a real call (aiortc on
loopback) through two gateway replicas and the calls service; one side's media is impaired
(a share of the RTP it receives dropped, or the far side's audio stopped) and its warning is
TRIGGERED, then RECOVERED once the impairment is lifted. The monitors sample every 0.2 s."""

from __future__ import annotations

from pathlib import Path

from parley_client import (
    Call,
    CallEndCause,
    CallListener,
    CallQualitySettings,
    CallQualityWarning,
    QualityRule,
    QualityWarningEvent,
    QualityWarningKind,
)
from tests.support.calls import established_call
from tests.support.impair import RtpLoss, StoppableTone
from tests.support.wire import bounded, eventually

from .stack import E2EStack, calling_party

QUALITY = CallQualitySettings(
    interval=0.2,
    high_packet_loss=QualityRule(5.0, 2.0, trigger_samples=2, recover_samples=3),
    no_audio_received=QualityRule(1.0, 0.0),
)


class Warnings(CallListener):
    def __init__(self) -> None:
        self.heard: list[CallQualityWarning] = []

    def on_call_quality_warning(self, call: Call, warning: CallQualityWarning) -> None:
        self.heard.append(warning)

    def of(self, kind: QualityWarningKind) -> list[QualityWarningEvent]:
        return [w.event for w in self.heard if w.kind is kind]

    async def wait(self, kind: QualityWarningKind, event: QualityWarningEvent) -> None:
        async def heard() -> bool:
            return event in self.of(kind)

        await eventually(heard, 15, f"{kind.name} {event.name}")


@bounded(60)
async def test_packet_loss_on_one_side_is_warned_of_and_recovers(
    stack: E2EStack, tmp_path: Path
) -> None:
    alice = await calling_party(
        stack, "alice lossy", tmp_path / "a", ["gateway-a"], tone=440, quality=QUALITY
    )
    bob = await calling_party(
        stack, "bob lossy", tmp_path / "b", ["gateway-b"], tone=880, quality=QUALITY
    )
    try:
        call, incoming = await established_call(alice, bob)
        heard_by_alice, heard_by_bob = Warnings(), Warnings()
        call.add_call_listener(heard_by_alice)
        incoming.add_call_listener(heard_by_bob)
        loss = RtpLoss(incoming, every=4)  # bob's network loses a quarter of what he gets
        loss.start()
        await heard_by_bob.wait(QualityWarningKind.HIGH_PACKET_LOSS, QualityWarningEvent.TRIGGERED)
        [triggered] = [w for w in heard_by_bob.heard if w.event is QualityWarningEvent.TRIGGERED]
        assert triggered.value >= 5.0 and triggered.threshold == 5.0
        loss.lift()
        await heard_by_bob.wait(QualityWarningKind.HIGH_PACKET_LOSS, QualityWarningEvent.RECOVERED)
        assert heard_by_bob.of(QualityWarningKind.HIGH_PACKET_LOSS) == [
            QualityWarningEvent.TRIGGERED,
            QualityWarningEvent.RECOVERED,
        ]
        assert heard_by_alice.of(QualityWarningKind.HIGH_PACKET_LOSS) == []  # alice hears well
        await call.hangup()
        await incoming.wait_ended(5)
        statistics = incoming.statistics
        assert statistics is not None and statistics.end_cause is CallEndCause.HUNG_UP
        assert statistics.received is not None
        assert statistics.received.packets_lost == loss.dropped > 0
        assert dict(statistics.warnings) == {"HIGH_PACKET_LOSS": 1}
        assert statistics.codec == "opus/48000/2" and 1.0 <= statistics.mos <= 4.5
    finally:
        await alice.client.terminate()
        await bob.client.terminate()


@bounded(60)
async def test_audio_that_stops_arriving_is_warned_of_and_recovers(
    stack: E2EStack, tmp_path: Path
) -> None:
    alice = await calling_party(
        stack, "alice quiet", tmp_path / "a", ["gateway-a"], tone=440, quality=QUALITY
    )
    bob = await calling_party(stack, "bob quiet", tmp_path / "b", ["gateway-b"], quality=QUALITY)
    source = StoppableTone(880)
    bob.client.audio_controller.set_source(source)
    try:
        call, incoming = await established_call(alice, bob)
        heard_by_alice = Warnings()
        call.add_call_listener(heard_by_alice)
        source.flowing.clear()  # bob sends nothing; the call's signalling goes on
        await heard_by_alice.wait(
            QualityWarningKind.NO_AUDIO_RECEIVED, QualityWarningEvent.TRIGGERED
        )
        source.flowing.set()
        await heard_by_alice.wait(
            QualityWarningKind.NO_AUDIO_RECEIVED, QualityWarningEvent.RECOVERED
        )
        [triggered, recovered] = [
            w for w in heard_by_alice.heard if w.kind is QualityWarningKind.NO_AUDIO_RECEIVED
        ]
        assert triggered.value >= 1.0 and recovered.value == 0.0
        await incoming.hangup()
        await call.wait_ended(5)
        assert call.statistics is not None
        assert call.statistics.warnings["NO_AUDIO_RECEIVED"] == 1
    finally:
        await alice.client.terminate()
        await bob.client.terminate()
