"""A stand-in conference replica for load: the media core alone (a Mixer and answering
MediaLegs), driven over pipes instead of the service's NATS and REST.

As a helper process (`python -m tests.support.conference.replica`, see pipes.py):
  join {room, id, offer}   -> {answer: SDP}
  leave {room, id}         -> {}
  stats {}                 -> {stats: the mixer's counts, participants, rooms, connected, cpu}
  profile {on}             -> {} (with PARLEY_CONFERENCE_PROFILE=path set: cProfile from on
                              to off, the stats written to that path)
"""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
import os
from typing import Any

from parley_conference.media import MediaLeg
from parley_conference.mixer import Mixer
from parley_legs.webrtc import use_host_addresses
from tests.support.conference.pipes import serve

PROFILE_ENV = "PARLEY_CONFERENCE_PROFILE"


class Replica:
    def __init__(self) -> None:
        self.mixer = Mixer()
        self.legs: dict[tuple[str, str], MediaLeg] = {}
        self.profile_path = os.environ.get(PROFILE_ENV)
        self.profiler: cProfile.Profile | None = None

    async def join(self, room: str, id: str, offer: str) -> str:
        leg = MediaLeg(lambda state: None)
        self.legs[room, id] = leg
        answer = await leg.answer(offer)
        self.mixer.join(room, id, leg)
        return answer

    async def leave(self, room: str, id: str) -> None:
        self.mixer.leave(room, id)
        leg = self.legs.pop((room, id), None)
        if leg is not None:
            await leg.close()

    def profile(self, on: bool) -> None:
        if self.profile_path is None:
            raise ValueError(f"profiling needs {PROFILE_ENV}")
        if on and self.profiler is None:
            self.profiler = cProfile.Profile()
            self.profiler.enable()
        elif not on and self.profiler is not None:
            self.profiler.disable()
            self.profiler.dump_stats(self.profile_path)
            self.profiler = None

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "join":
            return {"answer": await self.join(request["room"], request["id"], request["offer"])}
        if op == "leave":
            await self.leave(request["room"], request["id"])
            return {}
        if op == "stats":
            times = os.times()
            return {
                "stats": dataclasses.asdict(self.mixer.stats),
                "participants": self.mixer.participants(),
                "rooms": self.mixer.rooms(),
                "connected": sum(leg.connected.is_set() for leg in self.legs.values()),
                "cpu": times.user + times.system,
            }
        if op == "profile":
            self.profile(bool(request["on"]))
            return {}
        raise ValueError(f"unknown op {op}")


async def main() -> None:
    use_host_addresses(("127.0.0.1",))
    replica = Replica()
    await replica.mixer.start()
    try:
        await serve(replica.handle)
    finally:
        replica.profile(False) if replica.profiler is not None else None
        await replica.mixer.stop()
        for key in list(replica.legs):
            await replica.leave(*key)


if __name__ == "__main__":
    asyncio.run(main())
