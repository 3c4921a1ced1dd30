"""The audio bridge of a leg: a 48 kHz conference-bridge port on the pjsua side and
buffers the asyncio side reads and writes.

The port's callbacks run on pjsua's media clock thread (50 times a second per leg): they
only move bytes between deques and, when a reader waits, wake it with
``call_soon_threadsafe``. The bridge resamples between this port's 48 kHz and its own
clock, and between its clock and the call's codec.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

import pjsua2 as pj

from parley_sip.engine import _pcm
from parley_sip.engine.types import FRAME_BYTES, SAMPLE_RATE

_SILENCE = bytes(FRAME_BYTES)
OUT_FRAMES = 5  # frames buffered towards the phone; older ones are dropped
IN_FRAMES = 50  # frames from the phone kept for a slow reader (1 s)


class AudioPipe:
    """Frames both ways between asyncio and the media thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._out: deque[bytes] = deque(maxlen=OUT_FRAMES)
        self._partial = bytearray()
        self._in: deque[bytes] = deque(maxlen=IN_FRAMES)
        self._lock = threading.Lock()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    # asyncio side
    def write(self, pcm: bytes) -> None:
        self._partial += pcm
        while len(self._partial) >= FRAME_BYTES:
            self._out.append(bytes(self._partial[:FRAME_BYTES]))
            del self._partial[:FRAME_BYTES]

    async def read(self) -> bytes:
        while True:
            with self._lock:
                if self._in:
                    return self._in.popleft()
                if self._closed:
                    raise EOFError("the SIP leg ended")
                waiter = self._loop.create_future()
                self._waiter = waiter
            await waiter

    def close(self) -> None:
        with self._lock:
            self._closed = True
            waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # media thread side
    def next_out(self) -> bytes:
        try:
            return self._out.popleft()
        except IndexError:
            return _SILENCE

    def put_in(self, pcm: bytes) -> None:
        with self._lock:
            if self._closed:
                return
            self._in.append(pcm)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            try:
                self._loop.call_soon_threadsafe(_wake, waiter)
            except RuntimeError:
                pass


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class BridgePort(pj.AudioMediaPort):  # type: ignore[misc]
    """A 48 kHz mono port of the conference bridge that feeds and drains an AudioPipe."""

    def __init__(self, pipe: AudioPipe | None, name: str) -> None:
        super().__init__()
        self.pipe: AudioPipe | None = pipe
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, SAMPLE_RATE, 1, 20_000, 16, 0, 0)
        self.createPort(name, fmt)

    def onFrameRequested(self, frame: Any) -> None:
        try:
            pipe = self.pipe
            data = pipe.next_out() if pipe is not None else _SILENCE
            _pcm.write(frame.buf, data)
            frame.size = len(data)
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        except Exception:
            pass

    def onFrameReceived(self, frame: Any) -> None:
        try:
            pipe = self.pipe
            if pipe is None:
                return
            if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size > 0:
                data = _pcm.read(frame.buf, frame.size)
                if len(data) != FRAME_BYTES:
                    data = (data + _SILENCE)[:FRAME_BYTES]
            else:
                data = _SILENCE
            pipe.put_in(data)
        except Exception:
            pass
