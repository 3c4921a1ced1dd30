"""The mean level of a call's audio, measured cheaply: the RMS of one frame in `every`
(packed 16-bit frames, as aiortc decodes Opus and as the SDK's sources make them), as a
fraction of full scale. aiortc reports no audio level of its own in its statistics."""

from __future__ import annotations

import array
import math
import operator
import sys
from dataclasses import dataclass
from typing import Any

FULL_SCALE = 32768.0
# One frame in this many is measured (20 ms frames: 10 a second).
EVERY = 5


@dataclass(frozen=True)
class LevelTally:
    """Audio levels measured: their sum and how many (0.0 silence to 1.0 full scale)."""

    total: float = 0.0
    count: int = 0

    def __add__(self, other: LevelTally) -> LevelTally:
        return LevelTally(self.total + other.total, self.count + other.count)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


class LevelMeter:
    """The RMS levels of the frames it measured."""

    def __init__(self, every: int = EVERY) -> None:
        self._every = every
        self._seen = 0
        self._total = 0.0
        self._count = 0

    def tally(self) -> LevelTally:
        return LevelTally(self._total, self._count)

    def frame(self, frame: Any) -> None:
        """A frame went by (an av AudioFrame); one in `every` is measured."""
        self._seen += 1
        if (self._seen - 1) % self._every:
            return
        level = frame_level(frame)
        if level is not None:
            self._total += level
            self._count += 1


def frame_level(frame: Any) -> float | None:
    """The RMS of a packed signed 16-bit frame as a fraction of full scale; None for another
    sample format (not measured)."""
    if getattr(getattr(frame, "format", None), "name", None) != "s16":
        return None
    channels = len(frame.layout.channels)
    values = frame.samples * channels
    if values <= 0:
        return None
    samples = array.array("h")
    samples.frombytes(bytes(frame.planes[0])[: 2 * values])
    if sys.byteorder == "big":
        samples.byteswap()
    energy = sum(map(operator.mul, samples, samples))
    return min(1.0, math.sqrt(energy / len(samples)) / FULL_SCALE) if len(samples) else None
