"""`VideoController`: the video of calls (the guide's VideoController).

The capture source is any aiortc video track (a camera, a file); by default a
`PatternSource`. `toggle_capture_source()` switches between the last two sources set (the
guide's front and back cameras). `pause()` stops sending video in every video call and
tells each far side (`on_video_track_paused` there); `resume()` starts again. The SDK draws
nothing: `resize_behaviour` is kept for the app's own view of `local_track` and
`remote_track`.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack

    from parley_client.tracks import Fanout


class ResizeBehaviour(enum.Enum):
    """How a view fits a video frame of another shape (the guide's resize behaviours)."""

    ASPECT_FIT = "aspect_fit"  # all of the frame, bars around it
    ASPECT_FILL = "aspect_fill"  # the whole view, the frame cropped
    ASPECT_BALANCED = "aspect_balanced"  # between the two


class VideoController:
    """The client's video for every call: `client.video_controller`."""

    def __init__(self, media: bool) -> None:
        self._media = media
        self._sources: list[MediaStreamTrack] = []  # set by the app, the current one last
        self._default: MediaStreamTrack | None = None
        self._fanouts: dict[int, Fanout] = {}
        self._paused = False
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._remote: Callable[[], MediaStreamTrack | None] = lambda: None
        self._paused_changed: Callable[[bool], None] = lambda paused: None
        self.resize_behaviour = ResizeBehaviour.ASPECT_FIT

    @property
    def local_track(self) -> MediaStreamTrack | None:
        """The capture source video calls send (a `PatternSource` unless one was set); None
        in signalling-only mode."""
        if self._sources:
            return self._sources[-1]
        if not self._media:
            return None
        if self._default is None:
            from parley_client.sources import PatternSource

            self._default = PatternSource()
        return self._default

    @property
    def remote_track(self) -> MediaStreamTrack | None:
        """The far side's video in the current video call (None without one)."""
        return self._remote()

    def set_capture_source(self, track: MediaStreamTrack) -> None:
        """Send `track` (an aiortc video track) in every video call from now on."""
        if getattr(track, "kind", None) != "video":
            raise ValueError(f"{track!r} is not a video track")
        self._sources = [source for source in self._sources if source is not track][-1:]
        self._sources.append(track)

    def toggle_capture_source(self) -> None:
        """Switch to the capture source set before the current one (or to the default)."""
        if len(self._sources) == 2:
            self._sources.reverse()
        elif self._sources:
            current = self._sources.pop()
            self._sources = [current]
            if self._default is None and self._media:
                from parley_client.sources import PatternSource

                self._default = PatternSource()
            if self._default is not None:
                self._sources = [current, self._default]

    @property
    def is_paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Stop sending video in every call; the far sides hear `on_video_track_paused`."""
        if not self._paused:
            self._paused = True
            self._resumed.clear()
            self._paused_changed(True)

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._resumed.set()
            self._paused_changed(False)

    # -- for the calls -------------------------------------------------------------------------

    def bind(
        self,
        remote: Callable[[], MediaStreamTrack | None],
        paused_changed: Callable[[bool], None],
    ) -> None:
        """The call client's: where `remote_track` comes from, whom to tell of a pause."""
        self._remote = remote
        self._paused_changed = paused_changed

    def local_track_for_call(self) -> MediaStreamTrack:
        """A new track for one peer connection: the capture source as it is when read."""
        if not self._media:
            raise RuntimeError("no media in signalling-only mode")
        from parley_client.tracks import LocalVideoTrack

        return LocalVideoTrack(self._current_fanout, lambda: self._paused, self._resumed)

    def _current_fanout(self) -> Fanout:
        from parley_client.tracks import Fanout

        source = self.local_track
        assert source is not None
        fanout = self._fanouts.get(id(source))
        if fanout is None or fanout.source is not source:
            self._fanouts = {id(source): Fanout(source)}  # the old one stops with its taps
            fanout = self._fanouts[id(source)]
        return fanout
