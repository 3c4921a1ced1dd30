"""The media of one call: an aiortc peer connection (`PeerMedia`), or, in signalling-only
mode, nothing but placeholder session descriptions (`SignallingMedia`).

aiortc (and aioice, av) are imported only when a `PeerMedia` is made, so a client in
signalling-only mode never loads the media stack.

Descriptions are exchanged whole (no trickle ICE): each side gathers its candidates before
its description is sent (`setLocalDescription` waits for the gathering).

Which local addresses ICE offers is a client setting (`builder.ice_host_addresses`). aioice
takes them from `aioice.ice.get_host_addresses`, a module-global function that always leaves
127.0.0.1 out. The first `PeerMedia` of the process replaces that function, once, with one
that answers the addresses of the client whose peer connection is gathering (a context
variable set around the gathering) and defers to aioice's own function otherwise; so other
users of aioice in the process see no change, but they do see the replaced function.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from parley_client.audio_level import LevelMeter

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection
    from aiortc.mediastreams import MediaStreamTrack

PLACEHOLDER_SDP = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"

RELAY = "relay"
ALL = "all"


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server, as GetIceServers gives it."""

    urls: tuple[str, ...]
    username: str = ""
    credential: str = ""


@dataclass(frozen=True)
class MediaSettings:
    """What every peer connection of a client is made with."""

    ice_servers: tuple[IceServer, ...] = ()
    ice_transport_policy: str = ALL
    host_addresses: tuple[str, ...] | None = None  # None: aioice's own choice


class SdpError(Exception):
    """The far side's session description cannot be used; the message says why."""


class MediaEvents(Protocol):
    """What a call hears from a media of its own (each names the media it came from)."""

    def media_state(self, media: Media, state: str) -> None:
        """The peer connection's connectionState changed (e.g. "connected", "failed")."""

    def media_track(self, media: Media, kind: str, track: MediaStreamTrack) -> None:
        """The far side's track of `kind`, for the app (every frame, once read); told once
        the connection is up."""

    def media_frame(self, media: Media, kind: str) -> None:
        """A frame of the far side's `kind` arrived."""


class Media(Protocol):
    @property
    def flowing(self) -> bool:
        """Connected, and the far side's audio arrives."""

    async def offer(self) -> str: ...

    async def answer(self, offer_sdp: str) -> str:
        """The answer to the far side's offer; SdpError if the offer cannot be used."""

    async def accept_answer(self, answer_sdp: str) -> None:
        """Apply the far side's answer to our offer; SdpError if it cannot be used."""

    async def close(self) -> None: ...


class SignallingMedia:
    """No media: placeholder descriptions, and "flowing" as soon as they are exchanged."""

    flowing = True

    async def offer(self) -> str:
        return PLACEHOLDER_SDP

    async def answer(self, offer_sdp: str) -> str:
        return PLACEHOLDER_SDP

    async def accept_answer(self, answer_sdp: str) -> None:
        return None

    async def close(self) -> None:
        return None


# -- aioice's host addresses -------------------------------------------------------------------

_host_addresses: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "parley_ice_host_addresses", default=None
)
_patched = False


def _patch_host_addresses() -> None:
    """Replace `aioice.ice.get_host_addresses` (once per process; see the module's doc)."""
    global _patched
    if _patched:
        return
    import aioice.ice

    original: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        chosen = _host_addresses.get()
        if chosen is None:
            return original(use_ipv4, use_ipv6)
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses
    _patched = True


# -- aiortc ------------------------------------------------------------------------------------


class PeerMedia:
    """One aiortc RTCPeerConnection of a call, with the local tracks it sends and a monitor
    of every remote frame (through aiortc's MediaRelay, so the app gets every frame too)."""

    def __init__(
        self,
        settings: MediaSettings,
        events: MediaEvents,
        local_tracks: Callable[[], Sequence[MediaStreamTrack]],
        video: bool,
    ) -> None:
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
        from aiortc.contrib.media import MediaRelay

        _patch_host_addresses()
        self._settings = settings
        self._events = events
        self._local_tracks = local_tracks
        self._video = video
        self._relay = MediaRelay()
        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username or None, credential=s.credential)
            for s in settings.ice_servers
        ]
        # An explicit list, even empty: aiortc's default is a public STUN server.
        configuration = RTCConfiguration(iceServers=servers)
        if settings.ice_transport_policy == RELAY:
            from aiortc.rtcconfiguration import RTCIceTransportPolicy

            configuration.iceTransportPolicy = RTCIceTransportPolicy.RELAY
        self.configuration = configuration
        self.pc: RTCPeerConnection = RTCPeerConnection(configuration)
        self.connected = False
        self.audio_received = False
        self._sent: list[MediaStreamTrack] = []
        self._remote: list[MediaStreamTrack] = []  # the far side's, until connected
        self._monitors: set[asyncio.Task[None]] = set()
        self._closed = False
        # The audio levels received and sent (the call's statistics).
        self.level_received = LevelMeter()
        self.level_sent = LevelMeter()
        self.pc.on("connectionstatechange", self._state_changed)
        self.pc.on("track", self._track)

    @property
    def flowing(self) -> bool:
        return self.connected and self.audio_received

    async def offer(self) -> str:
        self._add_local_tracks()
        async with self._gathering():
            await self.pc.setLocalDescription(await self.pc.createOffer())
        return self._local_sdp()

    async def answer(self, offer_sdp: str) -> str:
        await self._set_remote(offer_sdp, "offer")
        self._add_local_tracks()
        async with self._gathering():
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self._local_sdp()

    async def accept_answer(self, answer_sdp: str) -> None:
        await self._set_remote(answer_sdp, "answer")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for track in self._sent:
            track.stop()
        await self.pc.close()
        for task in list(self._monitors):
            task.cancel()
        await asyncio.gather(*self._monitors, return_exceptions=True)

    # -- internals -----------------------------------------------------------------------------

    def _add_local_tracks(self) -> None:
        from parley_client.tracks import LocalAudioTrack

        for track in self._local_tracks():
            if track.kind == "video" and not self._video:
                continue
            if isinstance(track, LocalAudioTrack):
                track.meter = self.level_sent
            self._sent.append(track)
            self.pc.addTrack(track)

    @contextlib.asynccontextmanager
    async def _gathering(self) -> Any:
        token = _host_addresses.set(self._settings.host_addresses)
        try:
            yield
        finally:
            _host_addresses.reset(token)

    def _local_sdp(self) -> str:
        description = self.pc.localDescription
        assert description is not None
        return description.sdp

    async def _set_remote(self, sdp: str, kind: str) -> None:
        from aiortc import RTCSessionDescription

        try:
            async with self._gathering():
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        except Exception as exc:  # aiortc raises ValueError, InvalidStateError, ...
            raise SdpError(f"the {kind} cannot be used: {exc}") from exc
        kinds = {t.kind for t in self.pc.getTransceivers()}
        if "audio" not in kinds:
            raise SdpError(f"the {kind} has no audio")

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        self.connected = state == "connected"
        if self.connected:
            self._start_tracks()
        if not self._closed:
            self._events.media_state(self, state)

    def _track(self, track: MediaStreamTrack) -> None:
        self._remote.append(track)
        if self.connected:
            self._start_tracks()

    def _start_tracks(self) -> None:
        """Read the far side's tracks once connected (a track of a connection that never
        connects would never end, and a relay reading it would wait forever)."""
        tracks, self._remote = self._remote, []
        if self._closed:
            return
        for track in tracks:
            kind = track.kind
            monitor = self._relay.subscribe(track, buffered=False)
            task = asyncio.get_running_loop().create_task(
                self._monitor(kind, monitor), name=f"parley call media {kind}"
            )
            self._monitors.add(task)
            task.add_done_callback(self._monitors.discard)
            self._events.media_track(self, kind, self._relay.subscribe(track))

    async def _monitor(self, kind: str, track: MediaStreamTrack) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                if kind == "audio":
                    self.audio_received = True
                    self.level_received.frame(frame)
                if not self._closed:
                    self._events.media_frame(self, kind)
        except MediaStreamError:
            return
        finally:
            track.stop()
