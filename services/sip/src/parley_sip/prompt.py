"""The voice prompt of the test number: a WAV file in the package, read once as 20 ms frames
of 48 kHz mono PCM (the bridge's format)."""

from __future__ import annotations

import functools
import wave
from importlib import resources

import numpy as np

from parley_legs.webrtc import FRAME_SAMPLES, SAMPLE_RATE

PROMPT = "connected.wav"


@functools.cache
def prompt_frames(name: str = PROMPT) -> tuple[bytes, ...]:
    """The prompt as 20 ms frames of 48 kHz mono s16le, the last one padded with silence."""
    with resources.files("parley_sip.prompts").joinpath(name).open("rb") as f, wave.open(f) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"the prompt {name} must be 16-bit mono")
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    if rate != SAMPLE_RATE:
        # Linear interpolation: the prompt is 8 kHz speech, well below either Nyquist.
        count = int(len(samples) * SAMPLE_RATE / rate)
        samples = np.interp(np.arange(count) * rate / SAMPLE_RATE, np.arange(len(samples)), samples)
    pcm = np.clip(np.round(samples), -32768, 32767).astype("<i2")
    pad = (-len(pcm)) % FRAME_SAMPLES
    pcm = np.concatenate([pcm, np.zeros(pad, dtype="<i2")])
    return tuple(pcm[i : i + FRAME_SAMPLES].tobytes() for i in range(0, len(pcm), FRAME_SAMPLES))
