"""Live progress in the terminal (rich): connected clients, rates, errors and the rolling
p50/p99 of the last seconds, redrawn a few times a second."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from parley_loadtest.engine import Run
from parley_loadtest.events import CALL_KINDS

WINDOW = 5  # seconds the rates and rolling percentiles are over


def _rate(run: Run, field: str, now: float) -> float:
    tally = run.tally
    last = int(now - tally.started_at) - 1
    total = 0
    for index in range(last - WINDOW + 1, last + 1):
        entry = tally.seconds.get(index)
        if entry is not None:
            total += getattr(entry, field)
    return total / WINDOW


def _pct(pair: tuple[float | None, float | None]) -> str:
    p50, p99 = pair
    if p50 is None or p99 is None:
        return "-"
    return f"{p50:g} / {p99:g} ms"


def render(run: Run, now: float | None = None) -> Table:
    now = time.time() if now is None else now
    tally, plan = run.tally, run.plan
    table = Table(
        title=f"parley-loadtest {run.scenario.name} (run {run.run_id})", show_header=False
    )
    table.add_column(style="bold")
    table.add_column()
    table.add_row("phase", f"{run.phase}, {now - tally.started_at:.0f} s")
    table.add_row(
        "clients",
        f"{tally.connected} connected of {run.scenario.users} "
        f"({len(tally.started)} started, {len(tally.start_failed)} failed to start)",
    )
    totals = plan.totals
    table.add_row(
        "messages",
        f"{len(tally.sent)}/{totals.messages} sent, {len(tally.arrivals)} arrived, "
        f"{_rate(run, 'messages_arrived', now):.1f}/s, p50/p99 "
        f"{_pct(tally.rolling(now, 'message', WINDOW))}",
    )
    established = sum(len(tally.calls[k].established) for k in CALL_KINDS)
    failed = sum(len(tally.calls[k].failed) for k in CALL_KINDS)
    planned = totals.calls + totals.media_calls + totals.conference_joins + totals.phone_calls
    table.add_row(
        "calls",
        f"{established}/{planned} set up, {failed} failed, "
        f"{_rate(run, 'calls_established', now):.1f}/s, set-up p50/p99 "
        f"{_pct(tally.rolling(now, 'call', WINDOW))}",
    )
    table.add_row("errors", f"{tally.errors} ({_rate(run, 'errors', now):.1f}/s)")
    if tally.kill_at is not None:
        table.add_row(
            "storm",
            f"{len(tally.down_at)} lost their connection, {len(tally.back_at)} back "
            f"({now - tally.kill_at:.1f} s since the kill)",
        )
    return table


class LiveProgress:
    """The engine's progress callback, drawing with rich.Live while the run goes."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._live: Live | None = None

    def __call__(self, run: Run) -> None:
        if self._live is None:
            self._live = Live(render(run), console=self._console, refresh_per_second=4)
            self._live.start()
        else:
            self._live.update(render(run))

    def __enter__(self) -> LiveProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
