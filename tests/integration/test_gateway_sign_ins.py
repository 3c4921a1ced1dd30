"""The gateway's sign-in limit (PARLEY_MAX_SIGN_INS_IN_FLIGHT): Hellos beyond it wait
their turn instead of all running at once (a reconnect storm), and none is refused. Its own
module: a stack of its own on the shared NATS, with no other module's stack alive."""

from __future__ import annotations

import asyncio

from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import presence
from tests.integration.gateway_stack import module_stack


async def test_hellos_beyond_the_sign_in_limit_wait_their_turn_and_all_sign_in(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> None:
    """With one sign-in at a time, twenty devices saying Hello at once all get their
    Welcome (in turn, none refused) and, listening, are online."""
    async with module_stack(
        nats_server.url, postgres_server, "test_gwsi", max_sign_ins_in_flight=1
    ) as stack:
        assert stack.gateway().settings.max_sign_ins_in_flight == 1
        app = await stack.create_app()
        users = [f"storm {i}.x*>" for i in range(20)]
        clients = await asyncio.gather(
            *(stack.signed_in(app, user, listening=True) for user in users)
        )
        try:
            assert stack.gateway().sign_ins._value == 1  # every turn given back
            online = await clients[0].request(presence_query=presence.PresenceQuery(user_ids=users))
            assert [p.online for p in online.presence_result.users] == [True] * len(users)
        finally:
            for c in clients:
                await c.close()


async def test_a_hello_waiting_for_its_turn_is_not_timed_out_as_missing(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> None:
    """A Hello that waits for a sign-in turn longer than the Hello timeout still gets its
    Welcome: only a connection that sent no Hello at all is closed for it."""
    async with module_stack(
        nats_server.url,
        postgres_server,
        "test_gwsi",
        max_sign_ins_in_flight=1,
        hello_timeout_seconds=0.4,
    ) as stack:
        app = await stack.create_app()
        gateway = stack.gateway()
        silent = await stack.connect()
        async with gateway.sign_ins:  # every turn taken: Hellos wait
            waiting = asyncio.create_task(stack.signed_in(app, "waiting a.b*>"))
            # Several sweeps past the Hello timeout: the silent connection is closed by one.
            error = await silent.expect_error(ErrorCode.ERROR_CODE_HEARTBEAT_TIMEOUT)
            assert "no Hello within 0.4 s" in error.reason
            await asyncio.sleep(0.8)
            assert not waiting.done()
        device = await waiting  # its turn came: signed in, not timed out
        try:
            assert device.welcome.session_id
            await device.ping()
        finally:
            await device.close()
            await silent.close()
