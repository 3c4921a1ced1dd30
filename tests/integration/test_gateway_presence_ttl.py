"""Presence entries live while their gateway refreshes them and expire when it is gone.

Runs on its own NATS server: the presence bucket takes its TTL from the gateway that
creates it, and this test needs a one-second bucket.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import nats

from parley_devstack.nats import EmbeddedNats
from parley_gateway import presence as presence_module
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


@dataclass
class _Device:
    """What presence stores of a device (presence.Device), without a connection."""

    user_id: str
    application_key: str = "app-refresh"
    instance_id: str = "instance"
    token_digest: bytes = b""
    connected_at_ms: int = 1
    calling: bool = True
    messaging: bool = True
    active_connection: bool = False
    managed_push: bool = False
    listening: bool = True

    @property
    def connection_id(self) -> str:
        return f"c-{self.user_id}"

    @property
    def session_id(self) -> str:
        return self.connection_id


async def test_a_refresh_round_rewrites_every_current_entry_and_counts_a_lost_bucket_in_full(
    own_nats: EmbeddedNats, database_url: str
) -> None:
    """One write in REFRESH_ACK_EVERY is acknowledged, for the writes before it: a round of
    40 (three groups, the last one short) rewrites every entry still current; a round whose
    bucket is gone counts every write failed, not just the acknowledged ones."""
    assert presence_module.REFRESH_ACK_EVERY == 16
    stack: Stack = await start_stack(own_nats.url, database_url)
    nc = await nats.connect(own_nats.url)
    try:
        store = stack.gateway().presence
        kv = await nc.jetstream().key_value(subjects.PRESENCE_BUCKET)
        devices = [_Device(f"u{index}") for index in range(40)]
        assert await store.refresh(devices, lambda device: True) == 0
        first = {d.user_id: (await kv.get(store.key(d))).revision for d in devices}
        # u39, the last, ended meanwhile: its entry is not written again (nor re-put to
        # vouch for its group: u38 is).
        assert await store.refresh(devices, lambda device: device.user_id != "u39") == 0
        for d in devices:
            revision = (await kv.get(store.key(d))).revision
            assert (revision == first[d.user_id]) == (d.user_id == "u39"), d.user_id

        await nc.jetstream().delete_stream("KV_presence")
        assert await store.refresh(devices[:20], lambda device: True) == 20
    finally:
        await nc.close()
        await stack.close()
