"""`parley-loadtest run [scenario.yaml] [flags]`: run a scenario, show progress, write the
JSON and HTML reports, and exit 1 when an SLO line is missed.

Exit status: 0 every SLO met, 1 an SLO missed, 2 a bad scenario or flag (nothing started),
3 the run itself broke (a worker died, a step timed out).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from parley_loadtest.engine import EngineError, Run, run_scenario
from parley_loadtest.report import (
    build_report,
    comparison_lines,
    load_report,
    slo_results,
    write_json,
)
from parley_loadtest.report_html import render
from parley_loadtest.scenario import Scenario
from parley_loadtest.validate import ScenarioError, build, load_file, overlay

EXIT_SLO_MISSED = 1
EXIT_BAD_SCENARIO = 2
EXIT_BROKEN = 3

# flag -> (scenario path, type)
FLAGS: dict[str, tuple[str, type]] = {
    "--name": ("name", str),
    "--users": ("users", int),
    "--ramp-up": ("ramp_up_per_second", float),
    "--duration": ("duration_seconds", float),
    "--grace": ("grace_seconds", float),
    "--workers": ("workers", int),
    "--user-prefix": ("user_prefix", str),
    "--app-key": ("target.application_key", str),
    "--app-secret": ("target.application_secret", str),
    "--state-dir": ("target.state_dir", str),
    "--calls-per-second": ("calls.per_second", float),
    "--media-share": ("calls.media_share", float),
    "--messages-per-second": ("messages.per_second", float),
    "--conference-joins-per-second": ("conferences.joins_per_second", float),
    "--phone-calls-per-second": ("phone_calls.per_second", float),
    "--storm-kill-command": ("storm.kill.command", str),
    "--storm-kill-pid-file": ("storm.kill.pid_file", str),
    "--storm-after": ("storm.after_seconds", float),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="parley-loadtest",
        description="Load-test a Parley environment with simulated reference clients.",
    )
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run a scenario (a YAML file, flags, or both: flags win)",
        description="Run a scenario: a YAML file (see scenarios/), flags, or both (flags win).",
    )
    run.add_argument("scenario", nargs="?", help="a scenario file (YAML)")
    run.add_argument(
        "--host",
        action="append",
        dest="hosts",
        metavar="HOST",
        help="the environment host (host:port); repeat for several gateway replicas",
    )
    for flag, (path, kind) in FLAGS.items():
        run.add_argument(flag, type=kind, dest=path.replace(".", "__"), help=f"sets {path}")
    run.add_argument(
        "--out", default="loadtest-reports", help="folder of the reports (default %(default)s)"
    )
    run.add_argument("--compare", metavar="PREVIOUS.json", help="compare with an earlier report")
    run.add_argument("--quiet", action="store_true", help="no live progress, no summary")
    return top


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    """The scenario of the file and flags (ScenarioError naming every bad field)."""
    raw: dict[str, Any] = load_file(args.scenario) if args.scenario else {}
    overrides: dict[str, Any] = {}
    for path, _kind in FLAGS.values():
        value = getattr(args, path.replace(".", "__"))
        if value is not None:
            overrides[path] = value
    if args.hosts:
        overrides["target.hosts"] = args.hosts
    return build(overlay(raw, overrides), source=args.scenario or "")


def summary(report: dict[str, Any]) -> list[str]:
    f = report["figures"]
    lines = [
        f"run {report['run_id']} of {report['scenario']['name']}: {report['seconds']:g} s",
        f"  clients: {f['clients_started']} started, {f['clients_start_failed']} failed to "
        f"start, {f['clients_not_connected']} not connected at the end",
        f"  messages: {f['messages_sent']} sent, {f['messages_accepted']} accepted, "
        f"{f['messages_delivered']} delivered, {f['messages_lost']} lost, "
        f"{f['messages_duplicates']} duplicates; latency p50 {f['message_latency_p50_ms']} "
        f"ms, p99 {f['message_latency_p99_ms']} ms",
    ]
    for kind, label in (
        ("calls", "calls"),
        ("media_calls", "media calls"),
        ("conference_joins", "conference joins"),
        ("phone_calls", "phone calls"),
    ):
        if f[f"{kind}_placed"] or f[f"{kind}_failed"]:
            key = {"calls": "call_setup", "media_calls": "media_call_setup"}.get(
                kind, "conference_join" if kind == "conference_joins" else "phone_call_setup"
            )
            lines.append(
                f"  {label}: {f[f'{kind}_set_up']} set up of {f[f'{kind}_placed']} placed, "
                f"{f[f'{kind}_failed']} failed; p50 {f[f'{key}_p50_ms']} ms, "
                f"p99 {f[f'{key}_p99_ms']} ms"
            )
    if "storm_clients_affected" in f:
        lines.append(
            f"  storm: {f['storm_clients_affected']} clients lost their connection, "
            f"{f['storm_clients_back']} back, all back after {f['storm_reconnect_seconds_max']} "
            f"s (p50 {f['storm_reconnect_seconds_p50']} s), {f['storm_gave_up']} gave up"
        )
    lines.append(f"  errors: {f['errors']}")
    lines.extend(f"    {sample}" for sample in report["errors"]["samples"][:5])
    return lines


def make_report(
    run: Run, previous: dict[str, Any] | None = None, previous_name: str = ""
) -> dict[str, Any]:
    tally = run.tally
    totals = run.plan.totals
    return build_report(
        run_id=run.run_id,
        scenario=run.scenario,
        planned={
            "clients": run.scenario.users,
            "media_clients": run.plan.media_clients,
            "calls": totals.calls,
            "media_calls": totals.media_calls,
            "messages": totals.messages,
            "conference_joins": totals.conference_joins,
            "phone_calls": totals.phone_calls,
        },
        **tally.outcome(),
        started_at=tally.started_at,
        finished_at=run.finished_at or tally.started_at,
        previous=previous,
        previous_name=previous_name,
    )


def write_reports(report: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{report['scenario']['name']}-{report['run_id']}"
    json_path, html_path = folder / f"{stem}.json", folder / f"{stem}.html"
    write_json(report, json_path)
    html_path.write_text(render(report))
    return json_path, html_path


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    args = parser().parse_args(argv)
    try:
        scenario = scenario_from_args(args)
    except ScenarioError as exc:
        print("parley-loadtest: the scenario cannot run:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_BAD_SCENARIO
    previous = None
    if args.compare:
        try:
            previous = load_report(args.compare)
        except ValueError as exc:
            print(f"parley-loadtest: --compare: {exc}", file=sys.stderr)
            return EXIT_BAD_SCENARIO
    live = not args.quiet and sys.stderr.isatty()
    try:
        if live:
            from parley_loadtest.progress import LiveProgress

            with LiveProgress() as progress:
                run = asyncio.run(run_scenario(scenario, progress=progress))
        else:
            run = asyncio.run(run_scenario(scenario))
    except EngineError as exc:
        print(f"parley-loadtest: the run broke: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    report = make_report(run, previous, args.compare or "")
    json_path, html_path = write_reports(report, Path(args.out))
    if not args.quiet:
        for line in summary(report):
            print(line, file=stream)
        for line in comparison_lines(report):
            print(line, file=stream)
    missed = [s for s in slo_results(report) if not s.ok]
    for result in slo_results(report):
        if not result.ok or not args.quiet:
            print(f"  SLO {result.line()}", file=stream)
    print(f"report: {json_path} and {html_path}", file=stream)
    return EXIT_SLO_MISSED if missed else 0


if __name__ == "__main__":
    sys.exit(main())
