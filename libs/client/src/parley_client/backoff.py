"""Reconnection delays: exponential backoff with jitter."""

from __future__ import annotations

import random

INITIAL_DELAY = 0.2
MAX_DELAY = 5.0


def backoff_delay(
    attempt: int,
    rng: random.Random,
    initial: float = INITIAL_DELAY,
    cap: float = MAX_DELAY,
) -> float:
    """Delay before reconnect attempt `attempt` (0-based): between half and all of
    min(cap, initial * 2**attempt), so clients dropped together do not return together."""
    ceiling = min(cap, initial * float(2 ** min(max(attempt, 0), 32)))
    return float(ceiling / 2 + rng.uniform(0, ceiling / 2))
