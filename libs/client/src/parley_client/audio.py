"""`AudioController`: the audio of calls (the guide's AudioController).

The source is any aiortc audio track (a microphone, a file, a `ToneSource`); without one a
call sends silence. Muting sends silence in its place, so the far side keeps receiving
frames (its call does not go inactive) at a level of zero. The speaker switch is kept for
apps to read: this SDK plays nothing itself (the app reads `call.remote_audio_track`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack

    from parley_client.tracks import Fanout


class AudioController:
    """The client's audio for every call: `client.audio_controller`."""

    def __init__(self, media: bool) -> None:
        self._media = media
        self._muted = False
        self._speaker = False
        self._source: MediaStreamTrack | None = None
        self._fanout: Fanout | None = None

    @property
    def is_muted(self) -> bool:
        return self._muted

    def mute(self) -> None:
        """Send silence instead of the source (every call, at once)."""
        self._muted = True

    def unmute(self) -> None:
        self._muted = False

    @property
    def is_speaker_enabled(self) -> bool:
        return self._speaker

    def enable_speaker(self) -> None:
        self._speaker = True

    def disable_speaker(self) -> None:
        self._speaker = False

    @property
    def source(self) -> MediaStreamTrack | None:
        """The audio track calls send (None: silence)."""
        return self._source

    def set_source(self, track: MediaStreamTrack | None) -> None:
        """Send `track` (an aiortc audio track) in every call from now on; None: silence."""
        if track is not None and getattr(track, "kind", None) != "audio":
            raise ValueError(f"{track!r} is not an audio track")
        self._source = track
        self._fanout = None

    # -- for the media of calls ----------------------------------------------------------------

    def local_track(self) -> MediaStreamTrack:
        """A new track for one peer connection: the source as it is whenever it is read."""
        if not self._media:
            raise RuntimeError("no media in signalling-only mode")
        from parley_client.tracks import LocalAudioTrack

        return LocalAudioTrack(self._current_fanout, lambda: self._muted)

    def _current_fanout(self) -> Fanout:
        if self._fanout is None:
            from parley_client.sources import SilenceSource
            from parley_client.tracks import Fanout

            self._fanout = Fanout(self._source if self._source is not None else SilenceSource())
        return self._fanout
