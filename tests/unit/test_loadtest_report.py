"""parley-loadtest's counting and reports: loss, duplicates and latency from the markers'
events, a storm's reconnections, SLO verdicts, the comparison with a previous report, and
the self-contained HTML page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from parley_loadtest.cli import summary, write_reports
from parley_loadtest.report import (
    FORMAT,
    build_report,
    compare,
    comparison_lines,
    evaluate_slos,
    load_report,
)
from parley_loadtest.report_html import render, svg_chart
from parley_loadtest.tally import Tally
from parley_loadtest.validate import build

T0 = 1_700_000_000.0
CREDENTIALS = {"PARLEY_APPLICATION_KEY": "key", "PARLEY_APPLICATION_SECRET": "secret"}


def messages_tally() -> Tally:
    """5 messages: 1 arrives twice, 1 is accepted but never arrives, 1 fails, 1 is never
    accepted; one stale arrival of another run."""
    tally = Tally(T0)
    for seq in range(5):
        tally.add(("msg_sent", T0 + 1, seq))
    for seq in (0, 1, 2):
        tally.add(("msg_accepted", T0 + 1.1, seq))
    tally.add(("msg_failed", T0 + 1.2, 3, "NETWORK: gone"))
    tally.add(("msg_arrived", T0 + 1.3, 0, 0.010))
    tally.add(("msg_arrived", T0 + 1.4, 1, 0.030))
    tally.add(("msg_arrived", T0 + 2.0, 1, 0.600))  # the duplicate: not timed twice
    tally.add(("stale", T0 + 2.0, "message"))
    return tally


def test_loss_duplicates_and_latency_come_from_the_markers() -> None:
    figures = messages_tally().figures()
    assert figures["messages_sent"] == 5
    assert figures["messages_accepted"] == 3
    assert figures["messages_delivered"] == 2
    assert figures["messages_lost"] == 1  # seq 2: accepted, never arrived
    assert figures["messages_duplicates"] == 1  # seq 1
    assert figures["messages_failed"] == 1
    assert figures["messages_unaccepted"] == 1  # seq 4
    assert figures["messages_stale"] == 1
    assert figures["loss"] == 1 and figures["duplicates"] == 1
    assert figures["message_latency_p50_ms"] == pytest.approx(10, rel=0.01)
    assert figures["message_latency_max_ms"] == pytest.approx(30, rel=0.01)
    assert figures["errors"] == 1


def test_calls_are_counted_by_kind_with_set_up_latency_and_duplicate_offers() -> None:
    tally = Tally(T0)
    for seq in (1, 2, 3):
        tally.add(("call_placed", T0 + 1, "call", seq))
    tally.add(("call_arrived", T0 + 1.05, 1, 0.05))
    tally.add(("call_arrived", T0 + 1.06, 1, 0.06))
    tally.add(("call_established", T0 + 1.2, "call", 1, 0.2))
    tally.add(("call_established", T0 + 1.4, "call", 2, 0.4))
    tally.add(("call_failed", T0 + 16, "call", 3, "ParleyError: TIMEOUT"))
    tally.add(("call_placed", T0 + 1, "media_call", 9))
    tally.add(("call_established", T0 + 2, "media_call", 9, 1.0))
    tally.add(("call_ended", T0 + 3, "media_call", 9, "HUNG_UP"))
    figures = tally.figures()
    assert figures["calls_placed"] == 3 and figures["calls_set_up"] == 2
    assert figures["calls_failed"] == 1 and figures["media_calls_set_up"] == 1
    assert figures["call_setup_p99_ms"] == pytest.approx(400, rel=0.01)
    assert figures["media_call_setup_p50_ms"] == pytest.approx(1000, rel=0.01)
    assert figures["calls_duplicates"] == 1 and figures["duplicates"] == 1
    assert figures["conference_joins_placed"] == 0 and figures["conference_join_p99_ms"] is None


def test_a_storm_measures_until_every_client_is_back() -> None:
    tally = Tally(T0)
    for n in range(4):
        user = f"u{n}"
        tally.add(("started", T0 + 0.1, user, 0.05))
        tally.add(("connected", T0 + 0.1, user, "gateway-a" if n < 3 else "gateway-b", False))
    tally.storm_kill(T0 + 5)
    assert tally.gateways_at_kill == {"gateway-a": 3, "gateway-b": 1}
    for n in range(2):  # u2's worker has not told its loss yet
        tally.add(("disconnected", T0 + 5.01, f"u{n}", "connection lost"))
    assert tally.connected == 2 and not tally.storm_settled()
    tally.add(("connected", T0 + 5.5, "u0", "gateway-b", True))
    tally.add(("connected", T0 + 7.0, "u1", "gateway-b", True))
    assert not tally.storm_settled()
    tally.add(("disconnected", T0 + 7.05, "u2", "connection lost"))  # told late
    assert not tally.storm_settled()
    tally.add(("connected", T0 + 7.1, "u2", "gateway-b", True))
    assert tally.storm_settled()
    tally.storm_end(T0 + 7.2)
    figures = tally.figures()
    assert figures["storm_clients_at_kill"] == 4
    assert figures["storm_clients_affected"] == 3
    assert figures["storm_clients_back"] == 3
    assert figures["storm_gave_up"] == 0
    assert figures["storm_reconnect_seconds_max"] == pytest.approx(2.1)
    assert figures["storm_reconnect_seconds_p50"] == pytest.approx(2.0)
    assert figures["storm_clients_on_killed_replica"] == 0
    assert figures["storm_noticed_seconds_max"] == pytest.approx(2.05)  # u2, told late
    assert tally.storm_details()["gateways_at_end"] == {"gateway-b": 4}


def test_a_client_not_back_when_the_storm_ends_gave_up() -> None:
    tally = Tally(T0)
    for user in ("a", "b"):
        tally.add(("started", T0, user, 0.01))
        tally.add(("connected", T0, user, "gateway-a", False))
    tally.storm_kill(T0 + 1)
    tally.add(("disconnected", T0 + 1.1, "a", "lost"))
    tally.add(("disconnected", T0 + 1.1, "b", "lost"))
    tally.add(("connected", T0 + 2, "a", "gateway-b", True))
    tally.storm_end(T0 + 61)
    figures = tally.figures()
    assert figures["storm_gave_up"] == 1
    assert figures["storm_reconnect_seconds_max"] is None  # not every client came back
    assert tally.storm_details()["gave_up_users"] == ["b"]


def test_slo_lines_are_upper_limits_and_an_unmeasured_figure_misses() -> None:
    results = evaluate_slos(
        {"loss": 0, "message_latency_p99_ms": 50, "call_setup_p99_ms": 2000, "gave_up": 0},
        {"loss": 0, "message_latency_p99_ms": 80.5, "call_setup_p99_ms": None},
    )
    verdicts = {r.name: (r.ok, r.value) for r in results}
    assert verdicts == {
        "loss": (True, 0.0),
        "message_latency_p99_ms": (False, 80.5),
        "call_setup_p99_ms": (False, None),
        "gave_up": (False, None),
    }
    lines = [r.line() for r in results]
    assert "message_latency_p99_ms: 80.5 (limit 50) MISSED" in lines
    assert "call_setup_p99_ms: nothing measured (call_setup_p99_ms), limit 2000 MISSED" in lines


def test_the_comparison_goes_figure_by_figure() -> None:
    changes = {
        c.figure: c
        for c in compare(
            {"a": 100, "b": 4, "gone": 1, "none": None},
            {"a": 150, "b": 4, "new": 2, "none": None},
        )
    }
    assert list(changes) == ["a", "b", "new", "none", "gone"]
    assert changes["a"].delta == 50 and changes["a"].percent == 50
    assert changes["b"].delta == 0
    assert changes["new"].previous is None and changes["new"].delta is None
    assert changes["gone"].current is None


def report_of(
    tally: Tally, slo: dict[str, float], previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    scenario = build({"name": "unit", "slo": slo}, CREDENTIALS)
    tally.tick(T0 + 3)
    tally.mark(T0 + 1, "traffic")
    return build_report(
        run_id="r1",
        scenario=scenario,
        planned={"messages": 5},
        **tally.outcome(),
        started_at=T0,
        finished_at=T0 + 3,
        previous=previous,
        previous_name="before.json",
    )


def test_reports_are_written_as_json_and_a_self_contained_page(tmp_path: Path) -> None:
    first = report_of(messages_tally(), {"loss": 0})
    assert first["format"] == FORMAT and first["slo_met"] is False
    assert first["scenario"]["target"]["application_secret"] == "***"
    assert first["series"]["messages_sent"][1] == 5
    json_path, html_path = write_reports(first, tmp_path)
    previous = load_report(json_path)
    assert previous["figures"]["messages_lost"] == 1

    second = report_of(Tally(T0), {"loss": 0}, previous)
    assert second["slo_met"] is True
    lines = comparison_lines(second)
    assert lines[0] == "compared with before.json (run r1):"
    assert any(line.split()[0] == "messages_sent" and "-5" in line for line in lines[1:])
    page = render(second)
    assert page.count("<svg") == 4
    for title in ("Latency percentiles over time", "Throughput", "Errors", "Connected clients"):
        assert title in page
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "Compared with before.json" in page
    assert html_path.read_text().count("<svg") == 4
    assert any("5 sent" in line for line in summary(first))


def test_a_report_that_is_not_one_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"figures": {}}))
    with pytest.raises(ValueError, match="not a parley-loadtest report"):
        load_report(other)
    with pytest.raises(ValueError, match="not a readable report"):
        load_report(tmp_path / "absent.json")


def test_a_chart_leaves_gaps_and_draws_marks() -> None:
    svg = svg_chart("t", [0, 1, 2, 3], [("a", [1.0, None, 3.0, 4.0])], "ms", [(1.5, "kill")])
    assert svg.count("<polyline") == 1  # 3.0 -> 4.0
    assert svg.count("<circle") == 1  # 1.0 alone
    assert "kill" in svg and "stroke-dasharray" in svg


def test_the_live_progress_shows_clients_rates_errors_and_rolling_percentiles() -> None:
    from rich.console import Console

    from parley_loadtest.engine import Run
    from parley_loadtest.plan import make_plan
    from parley_loadtest.progress import render as progress

    scenario = build({"users": 4, "messages": {"per_second": 1}}, CREDENTIALS)
    tally = messages_tally()
    for user in ("a", "b", "c"):
        tally.add(("started", T0 + 0.5, user, 0.02))
        tally.add(("connected", T0 + 0.5, user, "gateway-a", False))
    run = Run("r9", scenario, make_plan(scenario, "r9"), tally, phase="traffic")
    console = Console(record=True, width=200)
    console.print(progress(run, now=T0 + 3.5))
    text = console.export_text()
    assert "traffic, 4 s" in text
    assert "3 connected of 4" in text
    assert "5/10 sent, 2 arrived" in text  # 10 planned: 1 a second for 10 s
    assert "p50/p99 10.05 / 30.08 ms" in text  # seconds 1 and 2 (2 significant digits)
    assert "errors" in text and "1 (0.2/s)" in text
