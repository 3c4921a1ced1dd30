"""The report as one self-contained HTML page: inline SVG charts drawn here (no script, no
external file), the figures, the SLO verdicts, the comparison and the exact parameters."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

WIDTH, PLOT_HEIGHT = 860, 196  # the plot area's height; the legend adds rows below
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 36
LEGEND_ITEM, LEGEND_ROW = 170, 16
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]

Line = tuple[str, Sequence[float | None]]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return 10.0 * magnitude


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.2g}"


def svg_chart(
    title: str,
    t: Sequence[float],
    lines: Sequence[Line],
    unit: str,
    marks: Sequence[tuple[float, str]] = (),
) -> str:
    """A line chart of `lines` over the seconds `t`: axes, ticks, a legend, and a dashed
    vertical line at each mark. None values leave a gap."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, PLOT_HEIGHT
    per_row = max(1, plot_w // LEGEND_ITEM)
    rows = (len(lines) + per_row - 1) // per_row
    height = TOP + plot_h + BOTTOM + rows * LEGEND_ROW + 4
    values = [v for _, series in lines for v in series if v is not None]
    top = _nice_max(max(values) if values else 1.0)
    end = max(t[-1] if t else 1.0, 1.0)

    def x(second: float) -> float:
        return LEFT + plot_w * second / end

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{LEFT}" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    for k in range(5):
        value = top * k / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            'stroke="#e4e4e4"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{_fmt(value)}</text>"
        )
    for k in range(6):
        second = end * k / 5
        parts.append(
            f'<text x="{x(second):.1f}" y="{TOP + plot_h + 16}" font-size="11" '
            f'text-anchor="middle">{second:.0f}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h + 30}" font-size="11" '
        'text-anchor="middle">'
        f"seconds into the run</text>"
        f'<text x="12" y="{TOP + plot_h / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {TOP + plot_h / 2})">{html.escape(unit)}</text>'
    )
    for n, (second, label) in enumerate(marks):
        if 0 <= second <= end:
            parts.append(
                f'<line x1="{x(second):.1f}" x2="{x(second):.1f}" y1="{TOP}" '
                f'y2="{TOP + plot_h}" stroke="#888" stroke-dasharray="4 3"/>'
                f'<text x="{x(second) + 3:.1f}" y="{TOP + 11 + 12 * (n % 3)}" font-size="10" '
                'fill="#555">'
                f"{html.escape(label)}</text>"
            )
    for n, (label, series) in enumerate(lines):
        colour = COLOURS[n % len(COLOURS)]
        runs: list[list[str]] = [[]]
        for second, point in zip(t, series, strict=False):
            if point is None:
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append(f"{x(second):.1f},{y(point):.1f}")
        for points in runs:
            if len(points) == 1:
                cx, cy = points[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
            elif points:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" '
                    f'points="{" ".join(points)}"/>'
                )
        lx = LEFT + LEGEND_ITEM * (n % per_row)
        ly = TOP + plot_h + BOTTOM + LEGEND_ROW * (n // per_row)
        parts.append(
            f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{ly + 9}" font-size="11">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], classes: Sequence[str] = ()
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for n, row in enumerate(rows):
        cls = f' class="{classes[n]}"' if n < len(classes) and classes[n] else ""
        cells = "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def charts(report: dict[str, Any]) -> list[str]:
    series = report["series"]
    t = [second + 0.5 for second in series.get("t", [])]  # a second's values at its middle
    marks = [(m["t"], m["what"]) for m in report.get("marks", [])]
    kinds = [("message", "message"), ("call", "call set-up"), ("media_call", "media call")]
    kinds += [("conference", "conference join"), ("phone", "phone call")]
    latency: list[Line] = []
    for kind, label in kinds:
        p50, p99 = series.get(f"{kind}_p50_ms", []), series.get(f"{kind}_p99_ms", [])
        if any(v is not None for v in p99):
            latency += [(f"{label} p50", p50), (f"{label} p99", p99)]
    return [
        svg_chart("Latency percentiles over time", t, latency, "ms", marks),
        svg_chart(
            "Throughput",
            t,
            [
                ("messages sent/s", series.get("messages_sent", [])),
                ("messages arrived/s", series.get("messages_arrived", [])),
                ("calls set up/s", series.get("calls_established", [])),
            ],
            "per second",
            marks,
        ),
        svg_chart("Errors", t, [("errors/s", series.get("errors", []))], "per second", marks),
        svg_chart(
            "Connected clients", t, [("connected", series.get("connected", []))], "clients", marks
        ),
    ]


STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 960px; }
table { border-collapse: collapse; margin: 8px 0 20px; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
th { background: #f2f2f2; }
tr.missed td { background: #fde2e2; } tr.ok td { background: #e3f6e3; }
pre { background: #f6f6f6; padding: 8px; font-size: 12px; overflow-x: auto; }
.verdict { font-size: 18px; font-weight: bold; }
"""


def render(report: dict[str, Any]) -> str:
    """The page of `report` (as report.build_report makes it)."""
    scenario = report["scenario"]
    title = f"parley-loadtest: {scenario['name']} (run {report['run_id']})"
    slos = report["slo"]
    verdict = (
        "no SLO lines" if not slos else ("every SLO met" if report["slo_met"] else "SLO missed")
    )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Started {html.escape(report['started_at'])}, {report['seconds']:g} s, "
        f"{scenario['users']} users on {html.escape(', '.join(scenario['target']['hosts']))}."
        f" <span class='verdict'>{verdict}</span></p>",
    ]
    if slos:
        parts.append("<h2>SLO</h2>")
        parts.append(
            _table(
                ["SLO", "figure", "limit", "value", "verdict"],
                [
                    [s["name"], s["figure"], s["limit"], s["value"], "ok" if s["ok"] else "MISSED"]
                    for s in slos
                ],
                ["ok" if s["ok"] else "missed" for s in slos],
            )
        )
    parts.append("<h2>Charts</h2>")
    parts.extend(f"<div class='chart'>{svg}</div>" for svg in charts(report))
    parts.append("<h2>Figures</h2>")
    parts.append(_table(["figure", "value"], list(report["figures"].items())))
    parts.append("<h2>Planned</h2>")
    parts.append(_table(["what", "count"], list(report["planned"].items())))
    comparison = report.get("comparison")
    if comparison:
        parts.append(
            f"<h2>Compared with {html.escape(str(comparison['previous']))} "
            f"(run {html.escape(str(comparison['previous_run_id']))})</h2>"
        )
        parts.append(
            _table(
                ["figure", "previous", "current", "change", "change %"],
                [
                    [c["figure"], c["previous"], c["current"], c["delta"], c["percent"]]
                    for c in comparison["changes"]
                ],
            )
        )
    if report.get("storm"):
        parts.append("<h2>Storm</h2>")
        parts.append(f"<pre>{html.escape(json.dumps(report['storm'], indent=2))}</pre>")
    errors = report["errors"]
    parts.append(f"<h2>Errors ({errors['count']})</h2>")
    if errors["samples"]:
        parts.append(f"<pre>{html.escape(chr(10).join(errors['samples']))}</pre>")
    parts.append("<h2>Parameters</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(scenario, indent=2))}</pre>")
    parts.append("</body></html>\n")
    return "".join(parts)
