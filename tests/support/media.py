"""Measuring what a call's far side received: the dominant frequency and level of its audio,
and the patterns of its video frames (shared by the unit and end-to-end call tests)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from parley_client import Call, PatternMark, PatternSource

SAMPLE_RATE = 48_000


async def received_audio(call: Call, seconds: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The far side's audio as `call.remote_audio_track` gives it for `seconds`: the first
    channel, as floats of full scale."""
    track = call.remote_audio_track
    assert track is not None
    chunks = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        frame = await asyncio.wait_for(track.recv(), 2)
        assert frame.sample_rate == SAMPLE_RATE
        samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
        chunks.append(samples.astype(np.float64) / 32768)
    return np.concatenate(chunks)


def dominant_hz(samples: np.ndarray[Any, np.dtype[np.float64]]) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[int(spectrum.argmax())])


def rms(samples: np.ndarray[Any, np.dtype[np.float64]]) -> float:
    return float(np.sqrt(np.mean(samples**2)))


async def marks(call: Call, count: int) -> list[PatternMark | None]:
    """The pattern marks of the next `count` frames of the far side's video."""
    track = call.remote_video_track
    assert track is not None
    return [PatternSource.decode(await asyncio.wait_for(track.recv(), 3)) for _ in range(count)]
