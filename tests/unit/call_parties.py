"""Parties of calls through the fake gateway (see tests/support/calls.py for what they hear)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from parley_client import CallQualitySettings
from tests.support.calls import Follower, Party
from tests.unit.client_double import Harness


class StalledTrack:
    """An audio source that never gives a frame (made on use: aiortc is imported lazily)."""

    def __new__(cls) -> Any:
        from aiortc.mediastreams import MediaStreamTrack

        class Stalled(MediaStreamTrack):
            kind = "audio"

            async def recv(self) -> Any:
                await asyncio.Event().wait()

        return Stalled()


async def party(
    h: Harness,
    user_id: str,
    *,
    media: bool = False,
    listen: bool = True,
    calling: bool = True,
    data_dir: Path | None = None,
    inactive_timeout: float | None = None,
    quality: CallQualitySettings | None = None,
    statistics: bool = True,
) -> Party:
    builder = h.builder(user_id).media(media).call_statistics(statistics)
    if quality is not None:
        builder.call_quality(quality)
    if data_dir is not None:
        builder.persistence_dir(data_dir)
    if media:
        builder.ice_host_addresses(["127.0.0.1"])
    if inactive_timeout is not None:
        builder.inactive_timeout(inactive_timeout)
    client, _ = h.client(builder)
    client.set_support_calling(calling)
    p = Party(client)
    if calling:
        client.call_client.add_call_client_listener(Follower(p))
    await client.start()
    if listen:
        await client.start_listening_on_active_connection()
    return p
