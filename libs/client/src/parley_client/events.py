"""The numbered device events of one session: which came, which were handled, and the ack.

The gateway numbers each device event it sends (`Envelope.event`: increasing within a
session, not contiguous). The client acknowledges the highest number below which every
event it received has been handled; features handle their frames concurrently, so events
finish out of order and the ack only moves over a handled prefix.
"""

from __future__ import annotations

from collections import deque


class EventLedger:
    """One session's numbered events. A new session starts a new ledger."""

    def __init__(self) -> None:
        self._highest_received = 0
        self._acked = 0
        self._waiting: deque[int] = deque()  # received, in order, not yet acked
        self._handled: set[int] = set()  # of those, the ones handled out of order

    @property
    def highest_received(self) -> int:
        """The largest event number received in this session."""
        return self._highest_received

    @property
    def acked(self) -> int:
        """Every event received up to this number has been handled."""
        return self._acked

    @property
    def unhandled(self) -> int:
        """How many received events wait for their handling to finish."""
        return len(self._waiting) - len(self._handled)

    def receive(self, number: int) -> bool:
        """Take in event `number`; False if it is a duplicate (not above the highest so far)."""
        if number <= self._highest_received:
            return False
        self._highest_received = number
        self._waiting.append(number)
        return True

    def handled(self, number: int) -> bool:
        """Event `number` (received here) was handled; True if the ack moved."""
        if not self._waiting or number < self._waiting[0]:
            return False
        if number != self._waiting[0]:
            self._handled.add(number)
            return False
        self._waiting.popleft()
        self._acked = number
        while self._waiting and self._waiting[0] in self._handled:
            self._acked = self._waiting.popleft()
            self._handled.discard(self._acked)
        return True
