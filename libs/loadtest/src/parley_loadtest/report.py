"""The report of a run: every figure, the exact parameters, the series per second, the SLO
verdicts and (optionally) a figure-by-figure comparison with a previous report. Written as
JSON; report_html.py draws the same as a page."""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from parley_loadtest.scenario import SLO_FIGURES, Scenario

FORMAT = "parley-loadtest-report/1"


@dataclass(frozen=True)
class SloResult:
    name: str
    figure: str
    limit: float
    value: float | None
    ok: bool

    def line(self) -> str:
        if self.value is None:
            return f"{self.name}: nothing measured ({self.figure}), limit {self.limit:g} MISSED"
        verdict = "ok" if self.ok else "MISSED"
        return f"{self.name}: {self.value:g} (limit {self.limit:g}) {verdict}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "figure": self.figure,
            "limit": self.limit,
            "value": self.value,
            "ok": self.ok,
        }


def evaluate_slos(slo: dict[str, float], figures: dict[str, Any]) -> list[SloResult]:
    """Each SLO line against its figure: met when the figure is at most the limit. A figure
    that was not measured (no calls, no storm) misses its SLO: a line about it was written
    to be checked."""
    results = []
    for name, limit in slo.items():
        figure = SLO_FIGURES[name]
        value = figures.get(figure)
        number = float(value) if isinstance(value, int | float) else None
        ok = number is not None and number <= limit
        results.append(SloResult(name, figure, limit, number, ok))
    return results


@dataclass(frozen=True)
class Change:
    figure: str
    previous: float | None
    current: float | None

    @property
    def delta(self) -> float | None:
        if self.previous is None or self.current is None:
            return None
        return self.current - self.previous

    @property
    def percent(self) -> float | None:
        delta = self.delta
        if delta is None or self.previous is None or self.previous == 0:
            return None
        return 100.0 * delta / abs(self.previous)

    def to_dict(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "previous": self.previous,
            "current": self.current,
            "delta": _round(self.delta),
            "percent": _round(self.percent),
        }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def compare(previous: dict[str, Any], current: dict[str, Any]) -> list[Change]:
    """Figure by figure, every figure either report has (in the current one's order)."""
    names = list(current) + [n for n in previous if n not in current]
    return [Change(n, _number(previous.get(n)), _number(current.get(n))) for n in names]


def load_report(path: str | Path) -> dict[str, Any]:
    """A report written earlier (ValueError naming the file if it is not one)."""
    file = Path(path)
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{file}: not a readable report ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{file}: not a parley-loadtest report (format {FORMAT})")
    if not isinstance(data.get("figures"), dict):
        raise ValueError(f"{file}: has no figures")
    return data


def build_report(
    *,
    run_id: str,
    scenario: Scenario,
    planned: dict[str, int],
    figures: dict[str, Any],
    series: dict[str, list[Any]],
    marks: list[tuple[float, str]],
    storm: dict[str, Any],
    errors: dict[str, Any],
    started_at: float,
    finished_at: float,
    previous: dict[str, Any] | None = None,
    previous_name: str = "",
) -> dict[str, Any]:
    slos = evaluate_slos(scenario.slo, figures)
    report: dict[str, Any] = {
        "format": FORMAT,
        "run_id": run_id,
        "scenario": scenario.to_dict(),
        "started_at": datetime.fromtimestamp(started_at, UTC).isoformat(),
        "seconds": round(finished_at - started_at, 3),
        "machine": {"host": platform.node(), "python": platform.python_version()},
        "planned": planned,
        "figures": figures,
        "slo": [s.to_dict() for s in slos],
        "slo_met": all(s.ok for s in slos),
        "storm": storm,
        "errors": errors,
        "series": series,
        "marks": [{"t": t, "what": what} for t, what in marks],
    }
    if previous is not None:
        report["comparison"] = {
            "previous": previous_name,
            "previous_run_id": previous.get("run_id"),
            "changes": [c.to_dict() for c in compare(previous["figures"], figures)],
        }
    return report


def slo_results(report: dict[str, Any]) -> list[SloResult]:
    return [SloResult(**entry) for entry in report["slo"]]


def comparison_lines(report: dict[str, Any]) -> list[str]:
    """The comparison as aligned text lines (empty without one)."""
    comparison = report.get("comparison")
    if not comparison:
        return []
    lines = [f"compared with {comparison['previous']} (run {comparison['previous_run_id']}):"]
    for change in comparison["changes"]:
        previous, current = change["previous"], change["current"]
        if previous is None and current is None:
            continue
        percent = f" ({change['percent']:+.1f} %)" if change["percent"] is not None else ""
        delta = f" {change['delta']:+g}{percent}" if change["delta"] is not None else ""
        lines.append(
            f"  {change['figure']:<36} {_show(previous):>12} -> {_show(current):>12}{delta}"
        )
    return lines


def _show(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
