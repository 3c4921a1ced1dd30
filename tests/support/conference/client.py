"""Light conference clients for load: each participant is a packet-level peer connection
(the media core's MediaLeg, offering) that sends pre-encoded Opus, a tone or silence, and
counts what it receives without decoding it, so a client process costs little CPU beside
the replica it loads.

As a helper process (`python -m tests.support.conference.client`, see pipes.py):
  offer {id, tone: Hz or null}   -> {offer: SDP}
  answer {id, sdp}               -> {connected: bool} once connected (or 20 s passed)
  close {id}                     -> {}
  stats {}                       -> {participants, connected, received, expected, cpu}
Or through a real stack, each participant a reference client whose call's media is the
light peer (`ParleyClient.builder().media_factory`):
  join {id, room, tone, host, key, secret} -> {connected: bool}: call_conference(room)
  leave {id}                     -> {}: hang up, stop the client
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from parley_client import Call, ParleyClient
from parley_conference.media import MediaLeg
from parley_conference.opus import FRAME_SAMPLES, SAMPLE_RATE, OpusEncoder, silent_packet
from parley_legs.webrtc import use_host_addresses
from tests.support.conference.pipes import serve

FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
AMPLITUDE = 0.25
_loops: dict[int | None, list[bytes]] = {}


def packets(hz: int | None) -> list[bytes]:
    """One second of a tone of whole `hz` (so it loops without a seam) as Opus packets;
    None: silence (the encoder's digital-silence packet)."""
    if hz not in _loops:
        if hz is None:
            _loops[hz] = [silent_packet()]
        else:
            encoder = OpusEncoder()
            n = np.arange(SAMPLE_RATE)
            wave = (AMPLITUDE * 32767 * np.sin(2 * np.pi * hz * n / SAMPLE_RATE)).astype(np.int16)
            frames = wave.reshape(-1, FRAME_SAMPLES)
            encoder.encode(frames[-1])  # the encoder is warm when the loop starts
            _loops[hz] = [encoder.encode(np.ascontiguousarray(f)) for f in frames]
    return _loops[hz]


class Participant:
    def __init__(self, hz: int | None) -> None:
        self.leg = MediaLeg(lambda state: None)
        self.loop = packets(hz)
        self.sent = 0
        self.connected_at: float | None = None

    def tick(self) -> None:
        """Send the next packet and forget what came in (it was counted)."""
        self.leg.outgoing.push(self.loop[self.sent % len(self.loop)])
        self.sent += 1
        if len(self.leg.inbox):
            self.leg.inbox.clear()


class LightMedia:
    """A participant's peer as a reference client's call media (it offers; it flows once
    the answer is in, like signalling-only media: the bench counts what arrives)."""

    flowing = True

    def __init__(self, participant: Participant) -> None:
        self.participant = participant

    async def offer(self) -> str:
        return await self.participant.leg.offer()

    async def answer(self, offer_sdp: str) -> str:
        return await self.participant.leg.answer(offer_sdp)

    async def accept_answer(self, answer_sdp: str) -> None:
        await self.participant.leg.accept_answer(answer_sdp)

    async def close(self) -> None:
        await self.participant.leg.close()


class Clients:
    """Participants of one process, one 20 ms clock for all their sending."""

    def __init__(self) -> None:
        self.participants: dict[str, Participant] = {}
        self.apps: dict[str, tuple[ParleyClient, Call]] = {}
        self._state = tempfile.mkdtemp(prefix="parley-bench-clients-")
        self._clock: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._clock = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        while True:
            due = start + tick * FRAME_SECONDS
            now = loop.time()
            if now < due:
                await asyncio.sleep(due - now)
            elif now - due > 5 * FRAME_SECONDS:  # far behind: catch up, frames unsent
                tick = int((now - start) / FRAME_SECONDS)
            for participant in self.participants.values():
                if participant.connected_at is not None:
                    participant.tick()
            tick += 1

    async def offer(self, id: str, tone: int | None) -> str:
        participant = self.participants[id] = Participant(tone)
        return await participant.leg.offer()

    async def answer(self, id: str, sdp: str) -> bool:
        participant = self.participants[id]
        await participant.leg.accept_answer(sdp)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(participant.leg.connected.wait(), 20)
        if participant.leg.connected.is_set():
            participant.connected_at = time.monotonic()
            return True
        return False

    async def join(self, id: str, room: str, tone: int | None, app: dict[str, str]) -> bool:
        """A reference client of its own joins `room` through the stack; its call's media
        is the participant's light peer."""
        participant = self.participants[id] = Participant(tone)
        client = (
            ParleyClient.builder()
            .application_key(app["key"])
            .application_secret(app["secret"])
            .user_id(f"bench {id}")
            .environment_host(app["host"])
            .persistence_dir(Path(self._state) / id)
            .media_factory(lambda call: LightMedia(participant))
            .build()
        )
        client.set_support_calling(True)
        await client.start()
        call = client.call_client.call_conference(room)
        self.apps[id] = (client, call)
        await call.wait_established(20)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(participant.leg.connected.wait(), 20)
        if participant.leg.connected.is_set():
            participant.connected_at = time.monotonic()
            return True
        return False

    async def leave(self, id: str) -> None:
        client, call = self.apps.pop(id)
        await call.hangup()
        await client.terminate()
        await self.close(id)

    async def close(self, id: str) -> None:
        participant = self.participants.pop(id, None)
        if participant is not None:
            await participant.leg.close()

    def stats(self) -> dict[str, Any]:
        """Packets received in all and expected (50 a second each since it connected)."""
        now = time.monotonic()
        connected = [p for p in self.participants.values() if p.connected_at is not None]
        times = os.times()
        return {
            "participants": len(self.participants),
            "connected": len(connected),
            "received": sum(p.leg.inbox.received for p in connected),
            "expected": sum(int((now - p.connected_at) / FRAME_SECONDS) for p in connected),  # type: ignore[operator]
            "cpu": times.user + times.system,
        }

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "offer":
            return {"offer": await self.offer(request["id"], request.get("tone"))}
        if op == "answer":
            return {"connected": await self.answer(request["id"], request["sdp"])}
        if op == "close":
            await self.close(request["id"])
            return {}
        if op == "join":
            app = {k: request[k] for k in ("host", "key", "secret")}
            connected = await self.join(request["id"], request["room"], request.get("tone"), app)
            return {"connected": connected}
        if op == "leave":
            await self.leave(request["id"])
            return {}
        if op == "stats":
            return self.stats()
        raise ValueError(f"unknown op {op}")


async def main() -> None:
    use_host_addresses(("127.0.0.1",))
    clients = Clients()
    clients.start()
    await serve(clients.handle)
    for id in list(clients.apps):
        with contextlib.suppress(Exception):
            await clients.leave(id)
    for id in list(clients.participants):
        await clients.close(id)


if __name__ == "__main__":
    asyncio.run(main())
