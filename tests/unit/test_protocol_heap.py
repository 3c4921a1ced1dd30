"""parley_protocol.heap: what start-up built is frozen, the young collections are spaced out,
and garbage cycles made afterwards are still collected. In a child process, so the test
run's own collector is left as it is."""

from __future__ import annotations

import json
import subprocess
import sys

from parley_protocol import heap

CHILD = """
import gc, json, weakref
from parley_protocol import heap

class Node:
    pass

kept = [Node() for _ in range(1000)]
heap.settle()
frozen = gc.get_freeze_count()
threshold = gc.get_threshold()

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle, unreachable once the names go
gone = weakref.ref(a)
del a, b
gc.collect()
print(json.dumps({"frozen": frozen, "threshold": threshold, "cycle_collected": gone() is None,
                  "kept_alive": len(kept)}))
"""


def test_settle_freezes_what_exists_spaces_young_collections_and_still_collects_cycles() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    found = json.loads(out)
    assert found["frozen"] >= 1000  # at least the objects made before settle()
    assert found["threshold"] == [
        heap.YOUNG_THRESHOLD,
        heap.MIDDLE_THRESHOLD,
        heap.OLD_THRESHOLD,
    ]
    assert found["cycle_collected"] is True
    assert found["kept_alive"] == 1000
