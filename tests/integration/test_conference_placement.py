"""Room placement against a real NATS server: replicas racing to place one room agree on
one replica, new rooms go to the least-loaded live one, a gone replica's rooms are taken
over, and a released room's key goes only while it still names its replica."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import nats
import pytest_asyncio
from nats.aio.client import Client as NATS

from parley_conference.placement import Placement
from parley_devstack.nats import EmbeddedNats
from parley_protocol.clock import SystemClock
from parley_service.assets import JetStreamAssets

TTL = 2.0
APP = str(uuid.uuid4())


@pytest_asyncio.fixture
async def nc(own_nats: EmbeddedNats) -> AsyncIterator[NATS]:
    conn = await nats.connect(own_nats.url)
    yield conn
    await conn.close()


async def replica(nc: NATS, name: str, ttl: float = TTL) -> Placement:
    placement = Placement(nc, JetStreamAssets(nc), SystemClock(), name, 1, ttl)
    await placement.open()
    return placement


async def test_replicas_racing_to_place_a_room_agree_on_one(nc: NATS) -> None:
    # Loads are written once: a TTL the test cannot outlive on a busy machine (a replica
    # whose load expired is gone, and its rooms are taken over: another test's subject).
    replicas = [await replica(nc, f"r{i}", ttl=60.0) for i in range(4)]
    for i, r in enumerate(replicas):
        await r.write_load(rooms=0, participants=i, draining=False)
    for n in range(5):
        room = f"race {n}.x*>"
        placed = await asyncio.gather(*(r.place(APP, room) for r in replicas for _ in range(3)))
        assert len({p.replica_id for p in placed}) == 1, placed
        # A new room goes to the least-loaded live replica (r0 has no participants).
        assert placed[0].replica_id == "r0"
        owner = await replicas[2].owner(APP, room)
        assert owner is not None and owner.replica_id == "r0"


async def test_a_stopping_replica_takes_no_new_room_and_the_fullest_comes_last(nc: NATS) -> None:
    a, b, c = [await replica(nc, name) for name in ("a", "b", "c")]
    await a.write_load(rooms=1, participants=1, draining=True)
    await b.write_load(rooms=3, participants=9, draining=False)
    await c.write_load(rooms=2, participants=4, draining=False)
    assert (await a.place(APP, "quiet room")).replica_id == "c"


async def test_a_gone_replicas_room_is_placed_anew_and_its_late_release_removes_nothing(
    nc: NATS,
) -> None:
    gone, alive = await replica(nc, "gone"), await replica(nc, "alive")
    await gone.write_load(rooms=0, participants=0, draining=False)
    await alive.write_load(rooms=0, participants=5, draining=False)
    first = await gone.place(APP, "moving room")
    assert first.replica_id == "gone"
    # "gone" stops writing its load; once its entry expires, its room goes elsewhere.
    await gone.forget_load()
    assert await alive.owner(APP, "moving room") is None
    taken = await alive.place(APP, "moving room")
    assert taken.replica_id == "alive" and taken.revision != first.revision
    # The old holder's release (at its own revision) leaves the new placement alone ...
    await gone.release(APP, "moving room", first.revision)
    owner = await alive.owner(APP, "moving room")
    assert owner is not None and owner.replica_id == "alive"
    # ... and the holder's own release removes it.
    await alive.release(APP, "moving room", taken.revision)
    assert await alive.owner(APP, "moving room") is None


async def test_a_room_that_ended_is_placed_again_under_the_same_id(nc: NATS) -> None:
    """A conference id is reused (a daily stand-up): once its room ended and its key was
    released, the next join places it again, also when replicas race to do it."""
    replicas = [await replica(nc, f"again{i}", ttl=60.0) for i in range(3)]
    for i, r in enumerate(replicas):
        await r.write_load(rooms=0, participants=i, draining=False)
    room = "daily stand up.x*>"
    for _ in range(3):
        placed = await asyncio.gather(*(r.place(APP, room) for r in replicas for _ in range(2)))
        assert {p.replica_id for p in placed} == {"again0"}, placed
        holder = await replicas[1].owner(APP, room)
        assert holder is not None and holder.replica_id == "again0"
        await replicas[0].release(APP, room, holder.revision)  # the room ended
        assert await replicas[1].owner(APP, room) is None


async def test_a_load_entry_expires_when_its_replica_stops_writing(nc: NATS) -> None:
    quiet = await replica(nc, "quiet")
    await quiet.write_load(rooms=0, participants=0, draining=False)
    assert "quiet" in await quiet.loads()
    await asyncio.sleep(TTL + 1.5)
    assert "quiet" not in await quiet.loads()
