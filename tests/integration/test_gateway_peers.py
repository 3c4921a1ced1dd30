"""Gateway liveness from heartbeats over real NATS, with a fake clock for the silences."""

from __future__ import annotations

import nats

from parley_devstack.nats import EmbeddedNats
from parley_gateway.peers import Peers
from parley_protocol.clock import FakeClock
from tests.support.wire import eventually


async def test_peers_hear_each_other_and_forget_the_silent_and_the_departed(
    nats_server: EmbeddedNats,
) -> None:
    nc = await nats.connect(nats_server.url)
    clock = FakeClock()
    a = Peers(nc, "gw-a", 30.0, clock)
    b = Peers(nc, "gw-b", 30.0, clock)
    c = Peers(nc, "gw-c", 30.0, clock)
    try:
        await a.start()
        await b.start()
        await c.start()
        await eventually(lambda: _async({"gw-b", "gw-c"} <= a.live_peers()), what="a hears b, c")
        # Within the start-up window everyone counts, heard or not.
        assert a.is_live("gw-unknown")
        # (Beats every 30 s: none fire on their own during this test.)
        clock.advance(100)  # past the window of 3 beats, and nobody beat since
        assert not a.is_live("gw-unknown")
        assert not a.is_live("gw-b")  # silent for 100 s: gone
        assert a.is_live("gw-a")  # itself, always
        await b._beat(alive=True)
        await eventually(lambda: _async(a.is_live("gw-b")), what="b heard again")
        await c.stop()  # a goodbye: gone at once, no waiting for silence
        await b._beat(alive=True)
        await eventually(
            lambda: _async(a.is_live("gw-b") and not a.is_live("gw-c")),
            what="c gone after its goodbye",
        )
    finally:
        for peers in (a, b):
            await peers.stop()
        await nc.close()


async def _async(value: bool) -> bool:
    return value
