"""Presence entries live while their gateway refreshes them and expire when it is gone.

Runs on its own NATS server: the presence bucket takes its TTL from the gateway that
creates it, and this test needs a one-second bucket.
"""

from __future__ import annotations

import asyncio

import nats

from parley_devstack.nats import EmbeddedNats
from parley_protocol import subjects
from parley_protocol.pb import presence
from tests.integration.gateway_stack import Stack, eventually, start_stack


async def test_entries_are_refreshed_and_expire_when_their_gateway_stops_refreshing(
    own_nats: EmbeddedNats, database_url: str
) -> None:
    # Without a resume window, entries live just the presence TTL (with one, at least it).
    stack: Stack = await start_stack(
        own_nats.url, database_url, presence_ttl_seconds=1.0, event_window_seconds=0
    )
    nc = await nats.connect(own_nats.url)
    try:
        kv = await nc.jetstream().key_value(subjects.PRESENCE_BUCKET)
        assert (await nc.jetstream().stream_info("KV_presence")).config.max_age == 1.0
        app = await stack.create_app()
        c = await stack.signed_in(app, "pat", listening=True)
        key = subjects.presence_key(app.key, "pat", c.welcome.session_id)
        entry = presence.PresenceEntry.FromString((await kv.get(key)).value or b"")
        assert entry.listening and entry.user_id == "pat"
        assert entry.gateway_id == stack.gateway().gateway_id
        assert entry.connection_id == c.welcome.session_id

        for _ in range(4):  # 2 s: twice the TTL, kept alive by the refresh loop
            await c.ping()
            await asyncio.sleep(0.5)
        assert (await kv.get(key)).value

        # A gateway that stops refreshing (as a crashed one does): its entries expire.
        stack.gateway()._loops[1].cancel()

        async def expired() -> bool:
            try:
                await kv.get(key)
            except nats.js.errors.KeyNotFoundError:
                return True
            return False

        await eventually(expired, timeout=4)
        await c.close()
    finally:
        await nc.close()
        await stack.close()
