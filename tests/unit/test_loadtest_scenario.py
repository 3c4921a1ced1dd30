"""parley-loadtest scenarios: every field checked by path before anything starts, flags on
top of the file, the plan's exact counts, and the markers messages and calls carry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parley_loadtest.cli import parser, scenario_from_args
from parley_loadtest.markers import Marker, read
from parley_loadtest.plan import SEQ_BLOCK, make_plan, seq_of
from parley_loadtest.validate import ScenarioError, build, load_file, overlay

REPO = Path(__file__).resolve().parents[2]
CREDENTIALS = {"PARLEY_APPLICATION_KEY": "key", "PARLEY_APPLICATION_SECRET": "secret"}


def problems(raw: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        build(raw, CREDENTIALS if env is None else env)
    return caught.value.problems


def test_defaults_build_with_credentials_from_the_environment() -> None:
    scenario = build({}, CREDENTIALS)
    assert scenario.target.application_key == "key"
    assert scenario.target.application_secret == "secret"
    assert scenario.target.hosts == ["localhost:8080"]
    assert scenario.storm.enabled is False
    assert scenario.to_dict()["target"]["application_secret"] == "***"


def test_a_bad_value_is_named_by_its_path() -> None:
    assert problems({"calls": {"media_share": 1.5}}) == [
        "calls.media_share: must be between 0 and 1, got 1.5"
    ]


def test_unknown_keys_are_refused_by_name_at_every_level() -> None:
    found = problems({"calls": {"per_sec": 2}, "colour": "red", "target": {"host": "x"}})
    assert (
        "calls.per_sec: unknown key (known here: per_second, media_share, hold_seconds, timeout_seconds)"
        in found
    )
    assert any(p.startswith("colour: unknown key") for p in found)
    assert any(p.startswith("target.host: unknown key") for p in found)
    assert len(found) == 3


def test_every_problem_is_told_at_once_and_types_are_not_coerced() -> None:
    found = problems(
        {
            "users": 2.5,
            "workers": "two",
            "messages": {"per_second": -1},
            "calls": {"per_second": True},
            "storm": {"after_seconds": 1, "timeout_seconds": 0},
            "phone_calls": {"number": "0046"},
            "target": {"hosts": ["ok:1", "bad host"]},
        }
    )
    assert "users: must be a whole number, got 2.5" in found
    assert "workers: must be a whole number, got 'two'" in found
    assert "messages.per_second: must be at least 0, got -1" in found
    assert "calls.per_second: must be a number, got True" in found
    assert "storm.timeout_seconds: must be more than 0, got 0" in found
    assert any(p.startswith("phone_calls.number: must be an E.164 number") for p in found)
    assert any(p.startswith("target.hosts[1]: must be host:port") for p in found)
    # a storm section means a storm: it needs a way to kill the replica
    assert any(p.startswith("storm.kill: missing") for p in found)


def test_missing_credentials_name_the_flag_and_the_variable() -> None:
    found = problems({}, env={})
    assert found == [
        "target.application_key: missing (in the scenario, --app-key or PARLEY_APPLICATION_KEY)",
        "target.application_secret: missing (in the scenario, --app-secret or "
        "PARLEY_APPLICATION_SECRET)",
    ]


def test_slo_lines_must_be_known_and_not_negative() -> None:
    found = problems({"slo": {"latency": 3, "loss": -1, "gave_up": "none"}})
    assert any(
        p.startswith("slo.latency: unknown SLO (known: message_latency_p50_ms") for p in found
    )
    assert "slo.loss: must be at least 0, got -1" in found
    assert "slo.gave_up: must be a number, got 'none'" in found


def test_a_storm_kill_is_a_command_or_a_pid_file_unless_the_caller_kills() -> None:
    both = {"storm": {"kill": {"command": "true", "pid_file": "x.pid"}}}
    assert problems(both) == ["storm.kill: give a command or a pid_file, not both"]
    assert build({"storm": {}}, CREDENTIALS, kill_given=True).storm.enabled
    assert not build({"storm": {"enabled": False}}, CREDENTIALS).storm.enabled


def test_too_few_users_for_the_traffic_are_refused() -> None:
    found = problems({"users": 3, "workers": 2, "calls": {"per_second": 1}})
    assert found == [
        "users: 3 users over 2 workers leave worker 1 1 signalling-only users; calls need at "
        "least 2 in each"
    ]
    found = problems({"users": 2, "workers": 3})
    assert found == ["workers: 3 workers for 2 users; give each one"]


def test_a_file_that_is_not_a_mapping_or_not_yaml(tmp_path: Path) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ScenarioError, match="must hold a mapping of settings, not a list"):
        load_file(listed)
    broken = tmp_path / "broken.yaml"
    broken.write_text("calls: [\n")
    with pytest.raises(ScenarioError, match="is not valid YAML"):
        load_file(broken)
    with pytest.raises(ScenarioError, match="cannot be read"):
        load_file(tmp_path / "absent.yaml")


def test_flags_override_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    file = tmp_path / "s.yaml"
    file.write_text("users: 40\ncalls:\n  per_second: 2\n  hold_seconds: 3\n")
    args = parser().parse_args(
        [
            "run",
            str(file),
            "--users",
            "60",
            "--media-share",
            "0.5",
            "--host",
            "a:1",
            "--host",
            "b:2",
        ]
    )
    scenario = scenario_from_args(args)
    assert scenario.users == 60
    assert scenario.calls.per_second == 2.0 and scenario.calls.hold_seconds == 3.0
    assert scenario.calls.media_share == 0.5
    assert scenario.target.hosts == ["a:1", "b:2"]
    assert scenario.source == str(file)
    assert overlay({"a": {"b": 1}}, {"a.c": 2, "d.e": 3}) == {"a": {"b": 1, "c": 2}, "d": {"e": 3}}


def test_the_shipped_scenarios_are_valid() -> None:
    for name in ("smoke", "steady", "storm"):
        scenario = build(load_file(REPO / "scenarios" / f"{name}.yaml"), CREDENTIALS)
        assert scenario.name == name
    storm = build(load_file(REPO / "scenarios" / "storm.yaml"), CREDENTIALS)
    assert storm.storm.enabled and storm.storm.kill.command


def test_the_plan_places_exact_counts_and_keeps_media_in_worker_zero() -> None:
    scenario = build(
        {
            "users": 21,
            "workers": 2,
            "duration_seconds": 10,
            "calls": {"per_second": 1, "media_share": 0.3},
            "messages": {"per_second": 4.5},
            "conferences": {"joins_per_second": 0.2},
        },
        CREDENTIALS,
    )
    plan = make_plan(scenario, "run1")
    assert plan.totals.calls == 7 and plan.totals.media_calls == 3
    assert plan.totals.messages == 45 and plan.totals.conference_joins == 2
    first, second = plan.workers
    assert first.counts.media_calls == 3 and second.counts.media_calls == 0
    assert first.counts.calls + second.counts.calls == 7
    assert first.counts.messages + second.counts.messages == 45
    assert first.users == [f"load-{n}" for n in range(0, 21, 2)]
    assert first.media_users == plan.media_clients >= 2
    assert second.media_users == 0
    assert len(first.everyone) == 21


def test_markers_round_trip_through_headers_and_text() -> None:
    marker = Marker("abc123", 3 * SEQ_BLOCK + 7, 1_700_000_000.25)
    assert read(marker.headers()) == marker
    assert read({}, marker.text()) == marker
    assert read({}, "hello") is None
    assert read({"x-load-run": "r", "x-load-seq": "x", "x-load-sent": "1"}) is None
    assert read({"x-load-run": "r", "x-load-seq": "1", "x-load-sent": "nan"}) is None


def test_sequence_numbers_are_unique_across_workers_and_kinds() -> None:
    kinds = ("message", "call", "media_call", "conference", "phone")
    seqs = {seq_of(w, kind, k) for w in range(3) for kind in kinds for k in (0, 1, 99_999_999)}
    assert len(seqs) == 3 * len(kinds) * 3
