"""Reconnection delays: exponential backoff with jitter, spread wider after a drain, and
held back after the gateway said RATE_LIMITED."""

from __future__ import annotations

import random

from parley_protocol import framing
from parley_protocol.errors import ErrorCode

INITIAL_DELAY = 0.2
MAX_DELAY = 5.0
# After a drain (close 1012) every client of the replica reconnects at once: the first
# attempt waits uniformly over 0..DRAIN_SPREAD s so they arrive spread out.
DRAIN_SPREAD = 2.0
# After RATE_LIMITED (an Error or close 4429), wait between this and twice this.
RATE_LIMITED_DELAY = 3.0


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


def reconnect_delay(
    attempt: int, rng: random.Random, error_code: int, close_code: int | None = None
) -> float:
    """Delay before reconnect attempt `attempt` (0-based), after the connection (attempt 0)
    or the previous attempt failed with `error_code` (and, for attempt 0, `close_code`)."""
    delay = backoff_delay(attempt, rng)
    if error_code == ErrorCode.ERROR_CODE_RATE_LIMITED:
        return max(delay, RATE_LIMITED_DELAY + rng.uniform(0, RATE_LIMITED_DELAY))
    if attempt == 0 and close_code == framing.CLOSE_SERVICE_RESTART:
        return rng.uniform(0, DRAIN_SPREAD)
    return delay


def first_replica(current: int, count: int, rng: random.Random) -> int:
    """Where reconnecting starts: a random replica other than `current` (of `count`), so the
    clients of a replica that went away do not all land on the same next one."""
    if count < 2:
        return current
    return (current + rng.randrange(1, count)) % count
