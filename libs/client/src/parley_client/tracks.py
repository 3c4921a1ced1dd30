"""The aiortc tracks between a call's peer connection and the app's sources and sinks.

- `Fanout`: one local source shared by every peer connection that sends it (several calls,
  or the old and the new connection of a media restart), read only while one does.
- `LocalAudioTrack`: what a peer connection sends of the audio controller's source; silence
  while muted; it follows the controller to a new source.
- `LocalVideoTrack`: the same for the video controller's capture source; sends nothing while
  paused.
- `RemoteTrack`: what the app reads of the far side's audio or video; the same object across
  media restarts (it moves to the new connection's track).

Importing this module imports aiortc (the client imports it only when media is on).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame
from av.frame import Frame
from av.packet import Packet

from parley_client.audio_level import LevelMeter
from parley_client.sources import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, silent_frame

# How many frames a subscriber of a local source may fall behind before the oldest go.
_TAP_FRAMES = 8


class Tap(MediaStreamTrack):
    """One subscriber's view of a `Fanout`: every frame of the source, from now on."""

    def __init__(self, fanout: Fanout) -> None:
        super().__init__()
        self.kind = fanout.source.kind
        self._fanout: Fanout | None = fanout
        self._queue: asyncio.Queue[Frame | None] = asyncio.Queue(_TAP_FRAMES)

    def put(self, frame: Frame | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(frame)

    async def recv(self) -> Frame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        super().stop()
        fanout, self._fanout = self._fanout, None
        if fanout is not None:
            fanout.unsubscribe(self)


class Fanout:
    """Reads `source` while it has subscribers and hands each frame to all of them."""

    def __init__(self, source: MediaStreamTrack) -> None:
        self.source = source
        self._taps: list[Tap] = []
        self._reader: asyncio.Task[None] | None = None

    def subscribe(self) -> Tap:
        tap = Tap(self)
        self._taps.append(tap)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(
                self._read(), name="parley media source"
            )
        return tap

    def unsubscribe(self, tap: Tap) -> None:
        self._taps = [t for t in self._taps if t is not tap]
        if not self._taps and self._reader is not None:
            self._reader.cancel()
            self._reader = None

    async def _read(self) -> None:
        while self._taps:
            frame: Frame | None
            try:
                received = await self.source.recv()
            except MediaStreamError:
                received = None
            frame = received if isinstance(received, Frame) else None
            for tap in list(self._taps):
                tap.put(frame)
            if frame is None:
                return


class LocalAudioTrack(MediaStreamTrack):
    """The controller's current source (`source()`), or silence while `muted()` or once the
    source ended. Frames are stamped again, so a change of source keeps time."""

    kind = "audio"

    def __init__(self, source: Callable[[], Fanout], muted: Callable[[], bool]) -> None:
        super().__init__()
        self._source = source
        self._muted = muted
        self._fanout: Fanout | None = None
        self._tap: Tap | None = None
        self._pts = 0
        self.meter: LevelMeter | None = None  # measures what is sent, when set

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        fanout = self._source()
        if fanout is not self._fanout or self._tap is None:
            if self._tap is not None:
                self._tap.stop()
            self._fanout, self._tap = fanout, fanout.subscribe()
        try:
            frame = await self._tap.recv()
        except MediaStreamError:
            if self.readyState != "live":
                raise
            frame = None
        if not isinstance(frame, AudioFrame):  # the source ended: keep the stream going
            await asyncio.sleep(0.02)
            frame = silent_frame(960, 0)
        if self._muted():
            frame = _silent_like(frame)
        frame.pts = self._pts
        self._pts += frame.samples
        if self.meter is not None:
            self.meter.frame(frame)
        return frame

    def stop(self) -> None:
        super().stop()
        if self._tap is not None:
            self._tap.stop()
            self._tap = None


def _silent_like(frame: AudioFrame) -> AudioFrame:
    silent = AudioFrame(format=frame.format.name, layout=frame.layout.name, samples=frame.samples)
    for plane in silent.planes:
        plane.update(bytes(plane.buffer_size))
    silent.sample_rate = frame.sample_rate
    silent.time_base = frame.time_base
    return silent


class LocalVideoTrack(MediaStreamTrack):
    """The controller's capture source (`source()`); while `paused()` nothing is sent (recv
    waits for `resumed`). Frames are stamped from the loop's clock."""

    kind = "video"

    def __init__(
        self, source: Callable[[], Fanout], paused: Callable[[], bool], resumed: asyncio.Event
    ) -> None:
        super().__init__()
        self._source = source
        self._paused = paused
        self._resumed = resumed
        self._fanout: Fanout | None = None
        self._tap: Tap | None = None
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            while self._paused():
                await self._resumed.wait()
            fanout = self._source()
            if fanout is not self._fanout or self._tap is None:
                if self._tap is not None:
                    self._tap.stop()
                self._fanout, self._tap = fanout, fanout.subscribe()
            frame = await self._tap.recv()
            if isinstance(frame, VideoFrame) and not self._paused():
                break
        now = asyncio.get_running_loop().time()
        if self._start is None:
            self._start = now
        frame.pts = int((now - self._start) * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        return frame

    def stop(self) -> None:
        super().stop()
        if self._tap is not None:
            self._tap.stop()
            self._tap = None


class RemoteTrack(MediaStreamTrack):
    """What the far side sends, for the app: the same track across media restarts (each
    connection's track is attached in turn); ends when the call does."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._current: MediaStreamTrack | None = None
        self._changed = asyncio.Event()

    def attach(self, track: MediaStreamTrack) -> None:
        """Read `track` from now on (the previous one is let go)."""
        if self.readyState != "live":
            track.stop()
            return
        previous, self._current = self._current, track
        if previous is not None:
            previous.stop()
        self._changed.set()

    async def recv(self) -> Frame | Packet[Any]:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            track = self._current
            if track is None:
                await self._wait_changed()
                continue
            self._changed.clear()
            reading = asyncio.ensure_future(track.recv())
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({reading, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
            if not reading.done():  # another track was attached
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                    await reading
                continue
            try:
                return reading.result()
            except MediaStreamError:
                if track is self._current:  # it ended: wait for the next one (or our end)
                    self._current = None

    async def _wait_changed(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def stop(self) -> None:
        current, self._current = self._current, None
        super().stop()
        if current is not None:
            current.stop()
        self._changed.set()
