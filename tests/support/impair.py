"""Impairing a call's media on one side, for tests of its statistics and quality warnings:
`RtpLoss` drops a share of the RTP packets a peer connection receives (after SRTP, before its
receivers see them), as a lossy network would; `StoppableTone` is an audio source that stops
giving frames when told, so no audio is sent (the signalling goes on)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from parley_client import Call, ToneSource
from parley_client.media import PeerMedia


class RtpLoss:
    """Drops one RTP packet in `every` that the call's current peer connection receives (RTCP
    still passes), from `start()` until `lift()`; `dropped` counts them."""

    def __init__(self, call: Call, every: int) -> None:
        if every < 2:
            raise ValueError("drop one packet in at least 2")
        media = call.media
        if not isinstance(media, PeerMedia):
            raise ValueError(f"call {call.call_id} has no peer connection")
        self._transports = {id(t): t for t in _dtls_transports(media)}.values()
        self._every = every
        self._seen = 0
        self.dropped = 0

    def start(self) -> None:
        for transport in self._transports:
            original: Callable[[bytes, int], Awaitable[None]] = transport._handle_rtp_data

            async def lossy(
                data: bytes,
                arrival_time_ms: int,
                original: Callable[[bytes, int], Awaitable[None]] = original,
            ) -> None:
                self._seen += 1
                if self._seen % self._every == 0:
                    self.dropped += 1
                    return
                await original(data, arrival_time_ms)

            transport._handle_rtp_data = lossy  # the instance's, over the class's method

    def lift(self) -> None:
        for transport in self._transports:
            transport.__dict__.pop("_handle_rtp_data", None)


def _dtls_transports(media: PeerMedia) -> list[Any]:
    return [
        transceiver.receiver.transport
        for transceiver in media.pc.getTransceivers()
        if transceiver.receiver.transport is not None
    ]


class StoppableTone:
    """A tone that stops giving frames while its `flowing` event is clear (media stops; the
    signalling does not)."""

    def __new__(cls, hz: float) -> Any:
        import asyncio

        from aiortc.mediastreams import MediaStreamTrack

        class Track(MediaStreamTrack):
            kind = "audio"

            def __init__(self) -> None:
                super().__init__()
                self.tone = ToneSource(hz)
                self.flowing = asyncio.Event()
                self.flowing.set()

            async def recv(self) -> Any:
                await self.flowing.wait()
                return await self.tone.recv()

        return Track()
