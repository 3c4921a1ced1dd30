"""The cyclic garbage collector, tuned for processes that hold many long-lived objects.

A gateway holding ten thousand sessions, or a load-tester worker holding thousands of
simulated clients, keeps hundreds of thousands of objects alive for hours. At CPython's
defaults (a young collection every 700 allocations, the elder generations re-scanned as
they grow by a quarter) the collector re-walks them again and again: 13 to 15% of a
gateway's CPU during a reconnect storm, and over a third of the load tester's.

`settle()` is called once what the process keeps for good exists (after start-up, after a
ramp-up): one full collection, then everything still alive moves out of the collector's
sight (`gc.freeze`), and young collections run every `YOUNG_THRESHOLD` allocations, so
short-lived objects (a frame, a request's futures) mostly die by reference count before a
collection sees them. Cycles are still collected; only the frozen objects are no longer
scanned. Calling it again later freezes what was added since.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 50_000
# A middle-generation collection every 20 young ones; a full one after 10 of those (and only
# when the long-lived objects grew by a quarter, CPython's own rule).
MIDDLE_THRESHOLD: Final = 20
OLD_THRESHOLD: Final = 10


def settle() -> None:
    """Collect once, freeze the survivors, and space the young collections out."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
