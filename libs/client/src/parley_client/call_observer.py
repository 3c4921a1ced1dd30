"""Watches one call for the call client: while the call is established with real media, reads
its media statistics every `interval` seconds (the call's report, `call_stats`) and judges
them (quality warnings, `quality`); when the call ends, makes its statistics
(`call_report`). A call in signalling-only mode, or never established, is not sampled: its
statistics have no media part.

Sampling goes on while the call is established, so the means of RTT and jitter and the last
counters are known when the call ends, even if its peer connection closed first; the
statistics are made at once from them (nothing is awaited), before the call's listeners hear
that it ended.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from parley_client.call_details import CallDirection, CallState
from parley_client.call_report import CallStatistics, build_statistics
from parley_client.call_stats import Codec, MediaTotals, negotiated_codec, read_media
from parley_client.logs import AreaLog
from parley_client.media import PeerMedia
from parley_client.quality import CallQualitySettings, QualityMonitor

if TYPE_CHECKING:
    from parley_client.call import Call


class CallObserver:
    """The statistics and quality warnings of one call. Made with the call (so an incoming
    call's is made when it rings here); told `established()` and `ended()` by the call
    client."""

    def __init__(
        self, call: Call, settings: CallQualitySettings, log: AreaLog, *, media: bool
    ) -> None:
        self._call = call
        self._settings = settings
        self._log = log
        self._media_on = media
        self._rang_at = time.time() if call.direction is CallDirection.INCOMING else None
        self._totals = MediaTotals()
        self._monitor = QualityMonitor(settings)
        self._codecs: tuple[object, Codec | None] | None = None  # the media it was read from
        self._task: asyncio.Task[None] | None = None

    def established(self) -> None:
        """The call is established: sample its media (once started, until it ends)."""
        if not self._media_on or self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._sample(), name=f"parley call {self._call.call_id} statistics"
        )

    def ended(self) -> CallStatistics:
        """The call ended: stop sampling; its statistics."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        call = self._call
        return build_statistics(
            call_id=call.call_id,
            kind=call.kind,
            direction=call.direction,
            remote=call.remote_user_id,
            details=call.details,
            rang_at=self._rang_at,
            media=self._totals.summary(),
            warnings=self._monitor.triggered,
        )

    async def _sample(self) -> None:
        call = self._call
        loop = asyncio.get_running_loop()
        while call.state is CallState.ESTABLISHED:
            media = call.media
            if isinstance(media, PeerMedia):
                try:
                    await self._read(media, loop.time())
                except Exception as exc:  # not expected: this sample is lost, not the next
                    self._log.error(f"call {call.call_id}: statistics not read: {exc!r}")
            await asyncio.sleep(self._settings.interval)

    async def _read(self, media: PeerMedia, at: float) -> None:
        call = self._call
        reading = await read_media(media, at, self._codec(media))
        if reading is None or call.state is not CallState.ESTABLISHED:
            return
        self._totals.add(reading, media)
        for warning in self._monitor.feed(reading, media):
            self._log.info(
                f"call {call.call_id}: {warning.kind.name} {warning.event.name} "
                f"({warning.value:.1f}, threshold {warning.threshold:g})"
            )
            call.on_quality_warning(warning)

    def _codec(self, media: PeerMedia) -> Codec | None:
        if self._codecs is None or self._codecs[0] is not media or self._codecs[1] is None:
            self._codecs = (media, negotiated_codec(media.pc))
        return self._codecs[1]
