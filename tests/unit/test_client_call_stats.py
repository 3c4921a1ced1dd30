"""Call statistics: the report built from an ended call's details for every way a call ends,
what the client uploads to the (fake) stats service and when (in the background, kept while
disconnected, retried, dropped when refused), and the media part from a real aiortc call on
loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from parley_client import (
    Call,
    CallDetails,
    CallDirection,
    CallEndCause,
    CallKind,
    CallListener,
    CallQualitySettings,
    CallQualityWarning,
    CallStatistics,
    ParleyError,
    QualityRule,
    ToneSource,
)
from parley_client.call_report import build_statistics
from parley_client.call_stats import DirectionTotals, MediaSummary
from parley_client.mos import mos
from parley_client.stats_upload import CallReportUploader
from parley_protocol import framing, validation
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.pb import calls as calls_pb
from parley_protocol.pb import client as client_pb
from parley_protocol.pb import stats as stats_pb
from tests.support.calls import Party, established_call
from tests.support.impair import RtpLoss
from tests.unit.call_parties import party
from tests.unit.client_double import Harness, Recorder, harness, wait_until

T0 = 1_800_000_000.0


def details(
    cause: CallEndCause,
    *,
    progressed: float | None = None,
    established: float | None = None,
    ended: float = 30.0,
    error: ParleyError | None = None,
) -> CallDetails:
    """Details of a call started at T0, times in seconds after it."""
    return CallDetails(
        started_time=T0,
        progressed_time=T0 + progressed if progressed is not None else None,
        established_time=T0 + established if established is not None else None,
        ended_time=T0 + ended,
        duration=ended - established if established is not None else 0.0,
        end_cause=cause,
        error=error,
        is_video_offered=False,
    )


def build(
    d: CallDetails,
    direction: CallDirection = CallDirection.OUTGOING,
    rang_at: float | None = None,
    media: MediaSummary | None = None,
) -> CallStatistics:
    return build_statistics(
        call_id="4f2c1a8e-0b7d-4c39-9d51-6a0e2b7f3c11",
        kind=CallKind.APP,
        direction=direction,
        remote="bob",
        details=d,
        rang_at=rang_at,
        media=media,
        warnings={},
    )


# -- the report from the details, pure ---------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "times"),
    [
        # answered: set-up to ringing, ringing to established, talk to the end
        (
            details(CallEndCause.HUNG_UP, progressed=0.4, established=5.4, ended=65.4),
            (400, 5000, 60000),
        ),
        # rang out, or declined, or canceled while ringing: ringing to the end
        (details(CallEndCause.NO_ANSWER, progressed=0.3, ended=45.3), (300, 45000, 0)),
        (details(CallEndCause.DENIED, progressed=0.2, ended=3.2), (200, 3000, 0)),
        (details(CallEndCause.CANCELED, progressed=0.2, ended=1.2), (200, 1000, 0)),
        (details(CallEndCause.OTHER_DEVICE_ANSWERED, progressed=0.2, ended=2.2), (200, 2000, 0)),
        # never rang anywhere: no set-up, no ringing
        (details(CallEndCause.TIMEOUT, ended=10.0), (0, 0, 0)),
        (details(CallEndCause.CANCELED, ended=0.05), (0, 0, 0)),
        # answered by a device that never rang here (established without progressing)
        (details(CallEndCause.INACTIVE, established=2.0, ended=12.0), (2000, 0, 10000)),
        (
            details(CallEndCause.REMOVED, progressed=0.1, established=0.5, ended=7.5),
            (100, 400, 7000),
        ),
    ],
)
def test_the_times_of_every_kind_of_end(d: CallDetails, times: tuple[int, int, int]) -> None:
    statistics = build(d)
    assert (statistics.setup_ms, statistics.ringing_ms, statistics.talk_ms) == times
    assert statistics.end_cause is d.end_cause and statistics.error_code == ""
    assert statistics.started_at_ms == 1_800_000_000_000
    report = statistics.to_proto()
    assert report.end_cause == d.end_cause.value  # type: ignore[union-attr]
    assert (report.setup_ms, report.ringing_ms, report.talk_ms) == times
    assert not report.HasField("sent") and not report.HasField("received")
    assert (report.codec, report.rtt_ms, report.mos) == ("", 0.0, 0.0)


def test_a_failed_call_reports_its_error_code() -> None:
    error = ParleyError(ErrorCode.ERROR_CODE_NOT_FOUND, "user 'bob' never registered")
    statistics = build(details(CallEndCause.FAILURE, ended=0.1, error=error))
    assert statistics.error_code == "NOT_FOUND"
    assert statistics.to_proto().error_code == "NOT_FOUND"
    timeout = ParleyError(ErrorCode.ERROR_CODE_TIMEOUT, "no media arrived for 10 s")
    inactive = build(details(CallEndCause.INACTIVE, established=1, ended=20, error=timeout))
    assert inactive.to_proto().end_cause == calls_pb.CALL_END_CAUSE_INACTIVE
    assert inactive.error_code == "TIMEOUT"


def test_an_incoming_call_rings_from_when_it_arrived() -> None:
    d = details(CallEndCause.HUNG_UP, established=8.25, ended=20.0)
    statistics = build(d, CallDirection.INCOMING, rang_at=T0 + 0.25)
    assert (statistics.setup_ms, statistics.ringing_ms, statistics.talk_ms) == (250, 8000, 11750)
    assert statistics.to_proto().direction == stats_pb.CALL_DIRECTION_INCOMING
    declined = build(details(CallEndCause.DENIED, ended=4.25), CallDirection.INCOMING, T0 + 0.25)
    assert (declined.setup_ms, declined.ringing_ms, declined.talk_ms) == (250, 4000, 0)


def test_the_media_part_bitrates_and_mos() -> None:
    media = MediaSummary(
        codec="opus/48000/2",
        rtt_ms=40.0,
        sent=DirectionTotals(500, 5, 60_000, 2.5, 0.2),
        received=DirectionTotals(475, 25, 50_000, 4.0, 0.1),
    )
    d = details(CallEndCause.HUNG_UP, progressed=0.5, established=2.0, ended=12.0)
    statistics = build(d, media=media)
    assert statistics.sent is not None and statistics.received is not None
    assert statistics.sent.bitrate_bps == 48_000  # 60 kB over 10 s of talk
    assert statistics.received.bitrate_bps == 40_000
    assert statistics.mos == pytest.approx(mos(40.0, 4.0, 5.0))  # 25 of 500 lost: 5 %
    report = statistics.to_proto()
    assert report.codec == "opus/48000/2" and report.rtt_ms == 40.0
    assert (report.sent.packets, report.sent.packets_lost, report.sent.bytes) == (500, 5, 60_000)
    assert (report.received.jitter_ms, report.received.audio_level) == (4.0, 0.1)
    assert 1.0 <= report.mos <= 4.5


def test_an_unended_call_has_no_statistics() -> None:
    ongoing = CallDetails(T0, None, T0 + 1, None, 0.0, None, None, False)
    with pytest.raises(ValueError, match="has not ended"):
        build(ongoing)


# -- through the fake gateway: every call's report is uploaded ----------------------------------


def assert_valid(report: stats_pb.UploadCallReport, call: Call) -> None:
    """What the client sent is a well-formed UploadCallReport: it travels in an Envelope, and
    says what `call.statistics` says."""
    wire = framing.decode(framing.encode(client_pb.Envelope(seq=7, upload_call_report=report)))
    assert wire.upload_call_report == report
    validation.validate_call_id(report.call_id)
    assert call.statistics is not None
    assert report == call.statistics.to_proto()
    assert report.call_id == call.call_id and report.kind == calls_pb.CALL_KIND_APP
    assert report.end_cause != calls_pb.CALL_END_CAUSE_UNSPECIFIED
    assert report.started_at_ms == round(call.details.started_time * 1000)


async def stored(h: Harness, user: str, count: int = 1) -> list[stats_pb.UploadCallReport]:
    await wait_until(lambda: len(h.backend.stats.reports_of(user)) >= count)
    return h.backend.stats.reports_of(user)


async def test_an_answered_call_is_reported_by_both_parties(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        before = int(time.time() * 1000)
        call, incoming = await established_call(alice, bob)
        await asyncio.sleep(0.1)
        await call.hangup()
        await incoming.wait_ended(2)
        [mine], [theirs] = await stored(h, "alice"), await stored(h, "bob")
        assert_valid(mine, call)
        assert_valid(theirs, incoming)
        assert (mine.direction, mine.remote) == (stats_pb.CALL_DIRECTION_OUTGOING, "bob")
        assert (theirs.direction, theirs.remote) == (stats_pb.CALL_DIRECTION_INCOMING, "alice")
        for report, c in ((mine, call), (theirs, incoming)):
            assert report.end_cause == calls_pb.CALL_END_CAUSE_HUNG_UP and not report.error_code
            assert report.started_at_ms >= before - 1000
            assert report.talk_ms == round(c.details.duration * 1000) > 0
            # Signalling only: no media part.
            assert not report.HasField("sent") and not report.HasField("received")
            assert (report.codec, report.mos, dict(report.warnings)) == ("", 0.0, {})
        progressed = call.details.progressed_time
        assert progressed is not None
        assert mine.setup_ms == round((progressed - call.details.started_time) * 1000)


async def _denied(h: Harness, alice: Party, bob: Party, call: Call) -> CallEndCause:
    incoming = await bob.next_incoming()
    await incoming.hangup()
    return CallEndCause.DENIED


async def _canceled(h: Harness, alice: Party, bob: Party, call: Call) -> CallEndCause:
    await bob.next_incoming()
    await call.hangup()
    return CallEndCause.CANCELED


async def _no_answer(h: Harness, alice: Party, bob: Party, call: Call) -> CallEndCause:
    await bob.next_incoming()
    await wait_until(lambda: call.call_id in h.backend.calls.calls)
    await h.backend.calls.end(call.call_id, calls_pb.CALL_END_CAUSE_NO_ANSWER)
    return CallEndCause.NO_ANSWER


async def _timeout(h: Harness, alice: Party, bob: Party, call: Call) -> CallEndCause:
    await bob.next_incoming()
    await h.backend.calls.end(call.call_id, calls_pb.CALL_END_CAUSE_TIMEOUT)
    return CallEndCause.TIMEOUT


Scenario = Callable[[Harness, Party, Party, Call], Awaitable[CallEndCause]]


@pytest.mark.parametrize("scenario", [_denied, _canceled, _no_answer, _timeout])
async def test_calls_that_never_connected_are_reported_by_both_parties(
    tmp_path: Path, scenario: Scenario
) -> None:
    async with harness(tmp_path) as h:
        alice, bob = await party(h, "alice"), await party(h, "bob")
        call = alice.call("bob")
        cause = await scenario(h, alice, bob, call)
        await call.wait_ended(3)
        incoming = bob.incoming[0]
        await incoming.wait_ended(3)
        [mine], [theirs] = await stored(h, "alice"), await stored(h, "bob")
        assert_valid(mine, call)
        assert_valid(theirs, incoming)
        for report in (mine, theirs):
            assert report.end_cause == cause.value
            assert report.talk_ms == 0 and not report.HasField("received")
        assert theirs.setup_ms == incoming.statistics.setup_ms  # type: ignore[union-attr]
        assert mine.ringing_ms == call.statistics.ringing_ms  # type: ignore[union-attr]


async def test_a_call_that_could_not_be_set_up_is_reported_with_its_error(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        alice = await party(h, "alice")
        call = alice.call("nobody")  # never registered: StartCall fails NOT_FOUND
        details = await call.wait_ended(3)
        assert details.end_cause is CallEndCause.FAILURE
        [report] = await stored(h, "alice")
        assert_valid(report, call)
        assert report.end_cause == calls_pb.CALL_END_CAUSE_FAILURE
        assert report.error_code == "NOT_FOUND" and report.remote == "nobody"
        assert (report.setup_ms, report.ringing_ms, report.talk_ms) == (0, 0, 0)


class StatisticsAtTheEnd(CallListener):
    def __init__(self) -> None:
        self.seen: list[CallStatistics | None] = []

    def on_call_ended(self, call: Call) -> None:
        self.seen.append(call.statistics)


async def test_the_upload_does_not_hold_up_the_end_of_the_call(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.backend.stats.silent = True  # the stats service never answers
        alice, bob = await party(h, "alice"), await party(h, "bob")
        call, _ = await established_call(alice, bob)
        listener = StatisticsAtTheEnd()
        call.add_call_listener(listener)
        assert call.statistics is None
        await call.hangup()
        await call.wait_ended(2)
        # The listener read the statistics when it was told; the upload is still out.
        assert listener.seen == [call.statistics] and call.statistics is not None
        uploader = alice.client.feature(CallReportUploader)
        await wait_until(lambda: len(h.backend.stats.uploads) >= 2)
        assert uploader.pending == 1 and uploader.uploaded == 0
        assert not h.backend.stats.stored


async def test_statistics_can_be_kept_from_the_service(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice = await party(h, "alice", statistics=False)
        bob = await party(h, "bob")
        call, incoming = await established_call(alice, bob)
        await call.hangup()
        await incoming.wait_ended(2)
        await stored(h, "bob")
        with pytest.raises(LookupError):
            alice.client.feature(CallReportUploader)
        assert call.statistics is not None  # still made, for the app
        assert call.statistics.end_cause is CallEndCause.HUNG_UP
        await asyncio.sleep(0.2)
        assert [u.user_id for u in h.backend.stats.uploads] == ["bob"]


async def test_terminate_lets_the_reports_of_the_calls_it_ends_go_out(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.backend.stats.delay = 0.3  # a stats service that takes its time
        alice, bob = await party(h, "alice"), await party(h, "bob")
        call, _ = await established_call(alice, bob)
        uploader = alice.client.feature(CallReportUploader)
        await alice.client.terminate()  # hangs the call up, then closes
        assert uploader.uploaded == 1 and uploader.pending == 0  # answered before it closed
        [report] = h.backend.stats.reports_of("alice")
        assert report.call_id == call.call_id
        assert report.end_cause == calls_pb.CALL_END_CAUSE_HUNG_UP


# -- the uploader: disconnected, retried, refused, bounded ---------------------------------------


def report(number: int) -> stats_pb.UploadCallReport:
    return stats_pb.UploadCallReport(
        call_id=f"00000000-0000-4000-8000-{number:012d}",
        kind=calls_pb.CALL_KIND_APP,
        direction=stats_pb.CALL_DIRECTION_OUTGOING,
        remote="bob",
        end_cause=calls_pb.CALL_END_CAUSE_HUNG_UP,
    )


async def test_reports_wait_while_disconnected_and_go_after_the_reconnect(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        alice = await party(h, "alice")
        uploader = alice.client.feature(CallReportUploader)
        gateway = h.gateways[0]
        first_session = alice.client.session_id
        gateway.hello_close_code = 1013  # reconnects are refused until told otherwise
        await gateway.drop_all()
        await wait_until(lambda: not alice.client.is_started)
        uploader.submit(report(1))
        uploader.submit(report(2))
        await asyncio.sleep(0.3)
        assert uploader.pending == 2 and h.backend.stats.uploads == []
        gateway.hello_close_code = None
        await alice.client.wait_connected(10)
        await stored(h, "alice", 2)
        assert [u.report.call_id for u in h.backend.stats.uploads] == [
            report(1).call_id,
            report(2).call_id,
        ]
        assert {u.session_id for u in h.backend.stats.uploads} == {alice.client.session_id}
        assert alice.client.session_id != first_session
        await wait_until(lambda: uploader.pending == 0 and uploader.uploaded == 2)


async def test_a_network_failure_is_retried(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice = await party(h, "alice")
        uploader = alice.client.feature(CallReportUploader)
        busy = ProtocolError(ErrorCode.ERROR_CODE_UNAVAILABLE, "the stats service is busy")
        h.backend.stats.fail_next.extend([busy, busy])
        uploader.submit(report(1))
        [stored_report] = await stored(h, "alice")
        assert stored_report.call_id == report(1).call_id
        assert len(h.backend.stats.uploads) == 3  # twice refused as busy, then stored
        # The backend stores the report before the client has read its answer.
        await wait_until(lambda: uploader.uploaded == 1)
        assert uploader.dropped == 0


async def test_a_report_the_service_refuses_is_dropped_with_a_log_line(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice = await party(h, "alice")
        recorder = Recorder()
        alice.client.add_client_listener(recorder)
        uploader = alice.client.feature(CallReportUploader)
        bad = ProtocolError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "mos is above 4.5", "mos")
        h.backend.stats.fail_next.append(bad)
        uploader.submit(report(1))
        uploader.submit(report(2))
        [kept] = await stored(h, "alice")
        assert kept.call_id == report(2).call_id
        assert len(h.backend.stats.uploads) == 2  # the refused one was not sent again
        assert uploader.dropped == 1 and uploader.pending == 0
        assert recorder.logged(
            f"the report of call {report(1).call_id} was refused and dropped: "
            "INVALID_ARGUMENT: mos is above 4.5"
        )


async def test_at_most_a_hundred_reports_wait(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice = await party(h, "alice")
        uploader = alice.client.feature(CallReportUploader)
        gateway = h.gateways[0]
        gateway.hello_close_code = 1013
        await gateway.drop_all()
        await wait_until(lambda: not alice.client.is_started)
        for number in range(105):
            uploader.submit(report(number))
        assert uploader.pending == 100 and uploader.dropped == 5
        gateway.hello_close_code = None
        await alice.client.wait_connected(10)
        reports = await stored(h, "alice", 100)
        assert [r.call_id for r in reports] == [report(n).call_id for n in range(5, 105)]


# -- real media ----------------------------------------------------------------------------------


class Warnings(CallListener):
    def __init__(self) -> None:
        self.heard: list[CallQualityWarning] = []

    def on_call_quality_warning(self, call: Call, warning: CallQualityWarning) -> None:
        self.heard.append(warning)

    def events(self) -> list[tuple[str, str]]:
        return [(w.kind.name, w.event.name) for w in self.heard]


FAST = CallQualitySettings(
    interval=0.2,
    high_packet_loss=QualityRule(5.0, 2.0, trigger_samples=2, recover_samples=3),
)


async def test_a_real_call_reports_its_media(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        alice = await party(h, "alice", media=True, quality=FAST)
        bob = await party(h, "bob", media=True, quality=FAST)
        alice.client.audio_controller.set_source(ToneSource(440))
        bob.client.audio_controller.set_source(ToneSource(880))
        call, incoming = await established_call(alice, bob)
        warnings = Warnings()
        incoming.add_call_listener(warnings)
        loss = RtpLoss(incoming, every=4)  # a quarter of what bob receives is lost
        loss.start()
        await wait_until(lambda: ("HIGH_PACKET_LOSS", "TRIGGERED") in warnings.events(), 10)
        loss.lift()
        await wait_until(lambda: ("HIGH_PACKET_LOSS", "RECOVERED") in warnings.events(), 10)
        await call.hangup()
        await incoming.wait_ended(3)
        mine, theirs = call.statistics, incoming.statistics
        assert mine is not None and theirs is not None
        for statistics in (mine, theirs):
            assert statistics.codec == "opus/48000/2"
            assert statistics.sent is not None and statistics.received is not None
            assert statistics.sent.packets > 0 and statistics.received.packets > 0
            assert statistics.sent.bytes > 0 and statistics.received.bytes > 0
            assert statistics.sent.bitrate_bps > 0 and statistics.rtt_ms >= 0
            assert statistics.sent.audio_level > 0.05  # a tone at a quarter of full scale
            assert statistics.received.audio_level > 0.05
            assert 1.0 <= statistics.mos <= 4.5
        # Every packet dropped on bob's side is a packet bob lost, and only those.
        assert theirs.received.packets_lost == loss.dropped > 0  # type: ignore[union-attr]
        assert mine.received.packets_lost == 0  # type: ignore[union-attr]
        assert theirs.mos < mine.mos
        assert dict(theirs.warnings) == {"HIGH_PACKET_LOSS": 1} and dict(mine.warnings) == {}
        [uploaded] = await stored(h, "bob")
        assert uploaded == theirs.to_proto()
        assert uploaded.received.packets_lost == loss.dropped
        assert dict(uploaded.warnings) == {"HIGH_PACKET_LOSS": 1}
