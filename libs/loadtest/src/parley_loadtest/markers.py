"""Markers, not guesses: what every message and call of a run carries, so that what arrived
can be counted (loss, duplicates) and timed (latency) by the receiving side.

A marker is the run's id, a sequence number unique in the run for its kind, and the send
time (seconds since the epoch, `time.time()` of the sending worker: every worker runs on one
machine, so senders and receivers read one clock). It travels in the headers (and, for
messages, in the text too, so a message read anywhere says what it is).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

RUN = "x-load-run"
SEQ = "x-load-seq"
SENT = "x-load-sent"


@dataclass(frozen=True)
class Marker:
    run_id: str
    seq: int
    sent_at: float

    def headers(self) -> dict[str, str]:
        return {RUN: self.run_id, SEQ: str(self.seq), SENT: f"{self.sent_at:.6f}"}

    def text(self) -> str:
        return f"load {self.run_id} {self.seq} {self.sent_at:.6f}"


def read(headers: Mapping[str, str], text: str = "") -> Marker | None:
    """The marker in `headers` (or else in a message's `text`); None if there is none or it
    is malformed (a message of something else than a load test)."""
    if RUN in headers:
        fields = [headers.get(RUN, ""), headers.get(SEQ, ""), headers.get(SENT, "")]
    else:
        parts = text.split(" ")
        if len(parts) != 4 or parts[0] != "load":
            return None
        fields = parts[1:]
    run_id, seq, sent = fields
    try:
        number, at = int(seq), float(sent)
    except ValueError:
        return None
    if not run_id or number < 0 or not math.isfinite(at):
        return None
    return Marker(run_id, number, at)
