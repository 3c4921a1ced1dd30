"""Generated media sources, as aiortc tracks: a sine tone, silence, and a video pattern.

`ToneSource(hz)` and `SilenceSource()` give 48 kHz mono s16 audio in 20 ms frames;
`PatternSource(pattern_id)` gives video frames that a far side can recognise after lossy
coding (VP8): each frame is three bands of eight bars, each bar black or white, so one bit:

    band 0: the sync word 10110100 (tells a pattern frame from anything else)
    band 1: the pattern id (0-255: which source sent it)
    band 2: the frame counter (mod 256: frames arrive in order, none repeated)

`PatternSource.decode(frame)` reads the bars back (the mean luma of a box at each bar's
centre against mid-grey), so a test or an app can check that video flows end to end.

Every source paces itself to real time. Importing this module imports aiortc (the client
imports it only when media is on).
"""

from __future__ import annotations

import array
import asyncio
import fractions
import math
import sys
from dataclasses import dataclass

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
AUDIO_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)

# A consumer this many frame times behind its source is not served a burst: the pacing
# starts again from now.
_MAX_LAG_FRAMES = 5


class _Pacer:
    """When frame n of a stream of `period` seconds a frame is due, on the loop's clock."""

    def __init__(self, period: float) -> None:
        self._period = period
        self._start: float | None = None
        self._index = 0

    async def next(self) -> int:
        """Wait until the next frame is due; its number (from 0)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._start is None:
            self._start = now
        due = self._start + self._index * self._period
        if now - due > _MAX_LAG_FRAMES * self._period:
            self._start, due = now - self._index * self._period, now
        if due > now:
            await asyncio.sleep(due - now)
        index = self._index
        self._index += 1
        return index


def audio_frame(samples: array.array[int], pts: int) -> AudioFrame:
    """An s16 mono 48 kHz frame of `samples` (native-endian int16), stamped `pts`."""
    data = samples.tobytes() if sys.byteorder == "little" else _swapped(samples)
    frame = AudioFrame(format="s16", layout="mono", samples=len(samples))
    plane = frame.planes[0]
    plane.update(data + bytes(plane.buffer_size - len(data)))
    frame.pts = pts
    frame.sample_rate = SAMPLE_RATE
    frame.time_base = AUDIO_TIME_BASE
    return frame


def silent_frame(samples: int, pts: int) -> AudioFrame:
    return audio_frame(array.array("h", bytes(2 * samples)), pts)


def _swapped(samples: array.array[int]) -> bytes:
    copy = array.array("h", samples)
    copy.byteswap()
    return copy.tobytes()


class ToneSource(MediaStreamTrack):
    """A sine tone of `hz`, 48 kHz mono, 20 ms frames; `amplitude` is a fraction of full scale."""

    kind = "audio"

    def __init__(self, hz: float = 440.0, amplitude: float = 0.25) -> None:
        super().__init__()
        if not 0 <= hz < SAMPLE_RATE / 2:
            raise ValueError(f"a tone of {hz} Hz cannot be sampled at {SAMPLE_RATE} Hz")
        if not 0 <= amplitude <= 1:
            raise ValueError(f"amplitude {amplitude} is not between 0 and 1")
        self.hz = hz
        self.amplitude = amplitude
        self._pacer = _Pacer(FRAME_SAMPLES / SAMPLE_RATE)
        self._peak = int(32767 * amplitude)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        index = await self._pacer.next()
        first = index * FRAME_SAMPLES
        step = 2 * math.pi * self.hz / SAMPLE_RATE
        peak = self._peak
        samples = array.array(
            "h", (int(peak * math.sin(step * n)) for n in range(first, first + FRAME_SAMPLES))
        )
        return audio_frame(samples, first)


class SilenceSource(ToneSource):
    """Silence in 48 kHz mono 20 ms frames (what a call sends when no audio source is set)."""

    def __init__(self) -> None:
        super().__init__(0.0, 0.0)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        index = await self._pacer.next()
        return silent_frame(FRAME_SAMPLES, index * FRAME_SAMPLES)


SYNC_WORD = 0b10110100
_BARS = 8
_BANDS = 3
_WHITE = 235
_BLACK = 16
_GREY = 128


@dataclass(frozen=True)
class PatternMark:
    """What a recognised pattern frame carries."""

    pattern_id: int
    counter: int


class PatternSource(MediaStreamTrack):
    """Video frames of a known pattern (see the module's doc): `pattern_id` (0-255) tells
    sources apart; each frame's counter goes up by one (mod 256)."""

    kind = "video"

    def __init__(
        self, pattern_id: int = 0, width: int = 320, height: int = 240, fps: float = 15.0
    ) -> None:
        super().__init__()
        if not 0 <= pattern_id <= 255:
            raise ValueError(f"pattern id {pattern_id} is not 0-255")
        if width < 4 * _BARS or height < 4 * _BANDS or width % 2 or height % 2:
            raise ValueError(f"{width}x{height} is too small or odd for the pattern")
        if not 0 < fps <= 60:
            raise ValueError(f"{fps} frames a second is not 1-60")
        self.pattern_id = pattern_id
        self.width = width
        self.height = height
        self.fps = fps
        self._pacer = _Pacer(1 / fps)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        index = await self._pacer.next()
        frame = self.frame(index % 256)
        frame.pts = int(index * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        return frame

    def frame(self, counter: int) -> VideoFrame:
        """The pattern frame that carries `counter` (unstamped)."""
        frame = VideoFrame(self.width, self.height, "yuv420p")
        luma, cb, cr = frame.planes
        stride = luma.line_size
        rows = []
        for band, value in enumerate((SYNC_WORD, self.pattern_id, counter)):
            row = bytearray(stride)
            for bar in range(_BARS):
                bit = (value >> (_BARS - 1 - bar)) & 1
                left, right = _span(bar, _BARS, self.width)
                row[left:right] = bytes([_WHITE if bit else _BLACK]) * (right - left)
            top, bottom = _span(band, _BANDS, self.height)
            rows.append(bytes(row) * (bottom - top))
        luma.update(b"".join(rows))
        for chroma in (cb, cr):
            chroma.update(bytes([_GREY]) * chroma.buffer_size)
        return frame

    @staticmethod
    def decode(frame: VideoFrame) -> PatternMark | None:
        """The pattern a received frame carries, or None if it is not a pattern frame."""
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        luma = frame.planes[0]
        data = bytes(luma)
        stride = luma.line_size
        width, height = frame.width, frame.height
        values = []
        for band in range(_BANDS):
            top, bottom = _span(band, _BANDS, height)
            value = 0
            for bar in range(_BARS):
                left, right = _span(bar, _BARS, width)
                level = _box_mean(data, stride, (left + right) // 2, (top + bottom) // 2, 3)
                value = (value << 1) | (level > _GREY)
            values.append(value)
        if values[0] != SYNC_WORD:
            return None
        return PatternMark(values[1], values[2])


def _span(index: int, count: int, size: int) -> tuple[int, int]:
    return index * size // count, (index + 1) * size // count


def _box_mean(data: bytes, stride: int, x: int, y: int, radius: int) -> float:
    total = 0
    for row in range(y - radius, y + radius + 1):
        start = row * stride + x - radius
        total += sum(data[start : start + 2 * radius + 1])
    return total / (2 * radius + 1) ** 2
