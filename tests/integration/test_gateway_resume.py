"""Session resume on real gateways and NATS, spoken by hand: numbered events, a resume on
another replica with the missed events replayed in order, and every refusal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import nats as nats_py
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS

from parley.v1 import echo_pb2
from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from parley_gateway.metrics import TOKEN_CHECKS
from parley_protocol import framing
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import client
from parley_service.devices import DeviceEvents
from tests.integration.gateway_stack import App, RawClient, Stack, module_stack

R = client.ResumeOutcome


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> AsyncIterator[Stack]:
    async with module_stack(
        nats_server.url, postgres_server, "test_resume", gateways=2, event_window_max_events=20
    ) as s:
        yield s


async def _hello(
    c: RawClient,
    stack: Stack,
    app: App,
    user: str,
    token: str | None = None,
    resume: str = "",
    after: int = 0,
) -> client.Welcome:
    await c.send(
        hello=client.Hello(
            access_token=token or await stack.token(app, user),
            application_key=app.key,
            user_id=user,
            capabilities=client.Capabilities(messaging=True),
            client_version="tests",
            resume_session_id=resume,
            resume_from_event=after,
        )
    )
    reply = await c.recv()
    assert reply.WhichOneof("body") == "welcome", reply
    c.welcome = reply.welcome
    return reply.welcome


async def _closed_with(c: RawClient) -> int:
    """Read (and drop) frames until the connection closes; the close code."""
    while True:
        msg = await c.ws.receive(timeout=5)
        if msg.type == aiohttp.WSMsgType.CLOSE:
            return int(msg.data)


async def _texts(c: RawClient, count: int) -> list[tuple[int, str]]:
    got = []
    for _ in range(count):
        frame = await c.recv()
        assert frame.WhichOneof("body") == "echo_event", frame
        got.append((frame.event, frame.echo_event.text))
    return got


async def test_events_are_numbered_and_a_resume_elsewhere_replays_what_was_missed(
    stack: Stack, app: App, bus: NATS
) -> None:
    events = DeviceEvents(bus)
    user = "rae .*>"
    token = await stack.token(app, user)  # one device: one instance, two connections
    first = await stack.connect(0)
    welcome = await _hello(first, stack, app, user, token)
    for i in range(3):
        await events.to_user(app.key, user, echo_pb2.EchoEvent(text=f"e{i}"))
    got = await _texts(first, 3)
    numbers = [n for n, _ in got]
    assert [t for _, t in got] == ["e0", "e1", "e2"] and numbers == sorted(numbers) > [0]
    # The client handled e0 and e1 (it says so on a frame), then its network changes: the
    # old connection stays open on gateway 0, which has not noticed.
    await first.send(ping=client.Ping(), ack=numbers[1])
    assert (await first.recv()).WhichOneof("body") == "pong"
    for i in range(3, 6):
        await events.to_user(app.key, user, echo_pb2.EchoEvent(text=f"e{i}"))
    await events.to_session(app.key, user, welcome.session_id, echo_pb2.EchoEvent(text="own"))
    await events.to_user(
        app.key, user, echo_pb2.EchoEvent(text="not mine"), except_session_id=welcome.session_id
    )

    second = await stack.connect(1)
    resumed = await _hello(second, stack, app, user, token, welcome.session_id, numbers[1])
    assert resumed.resume == R.RESUME_OUTCOME_RESUMED and not resumed.resume_reason
    assert resumed.session_id == welcome.session_id
    assert resumed.gateway_id == stack.gateway(1).gateway_id
    await events.to_user(app.key, user, echo_pb2.EchoEvent(text="live"))
    replayed = await _texts(second, 6)
    assert [t for _, t in replayed] == ["e2", "e3", "e4", "e5", "own", "live"]
    assert [n for n, _ in replayed] == sorted(n for n, _ in replayed)
    assert replayed[0][0] == numbers[2]
    # The old connection was closed: its session lives on the new one.
    assert await _closed_with(first) == framing.CLOSE_TAKEN_OVER
    # Nothing more (no duplicate) comes on the new connection.
    with pytest.raises(TimeoutError):
        await second.ws.receive(timeout=0.3)
    await second.close()


async def test_a_resume_after_a_clean_disconnect_keeps_the_session(
    stack: Stack, app: App, bus: NATS
) -> None:
    events = DeviceEvents(bus)
    token = await stack.token(app, "sam")
    c = await stack.connect(0)
    welcome = await _hello(c, stack, app, "sam", token)
    await c.close()  # no Goodbye: a dropped connection
    await asyncio.sleep(0.2)
    await events.to_user(app.key, "sam", echo_pb2.EchoEvent(text="while away"))
    again = await stack.connect(0)
    resumed = await _hello(again, stack, app, "sam", token, welcome.session_id, 0)
    assert resumed.resume == R.RESUME_OUTCOME_RESUMED
    assert [t for _, t in await _texts(again, 1)] == ["while away"]
    # A Goodbye ends the session: it cannot be resumed.
    await again.send(goodbye=client.Goodbye(reason="done"))
    await asyncio.sleep(0.2)
    await again.close()
    third = await stack.connect(1)
    restorations = stack.gateway(1).assets.restorations
    fresh = await _hello(third, stack, app, "sam", token, welcome.session_id, 0)
    assert fresh.resume == R.RESUME_OUTCOME_EXPIRED and fresh.session_id != welcome.session_id
    # Looking for a record that is not there is not losing the bucket: nothing is rebuilt.
    await asyncio.sleep(0.3)
    assert stack.gateway(1).assets.restorations == restorations
    assert stack.gateway(1).assets.missing == []
    await third.close()


def _token_checks() -> dict[str, float]:
    return {how: TOKEN_CHECKS.labels(how)._value.get() for how in ("signature", "known")}


async def test_a_resume_presenting_the_sessions_own_token_skips_only_the_signature_check(
    stack: Stack, app: App
) -> None:
    """The record of a session holds the digest of the token verified for it: a resume on
    another replica with that very token is not checked for its signature again; the same
    token with one character changed is checked, and refused."""
    user = "kim .*>"
    token = await stack.token(app, user)
    before = _token_checks()
    first = await stack.connect(0)
    welcome = await _hello(first, stack, app, user, token)
    assert _token_checks()["signature"] == before["signature"] + 1
    await first.close()  # dropped: the record stays for the resume window
    await asyncio.sleep(0.2)

    # One character of the signature changed: another digest, so the signature is checked.
    head, _, signature = token.rpartition(".")
    forged = f"{head}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    thief = await stack.connect(1)
    await thief.send(
        hello=client.Hello(
            access_token=forged,
            application_key=app.key,
            user_id=user,
            client_version="tests",
            resume_session_id=welcome.session_id,
        )
    )
    error = await thief.expect_error(ErrorCode.ERROR_CODE_UNAUTHENTICATED)
    assert "signature" in error.reason
    assert _token_checks() == {"signature": before["signature"] + 2, "known": before["known"]}

    second = await stack.connect(1)
    resumed = await _hello(second, stack, app, user, token, welcome.session_id, 0)
    assert resumed.resume == R.RESUME_OUTCOME_RESUMED
    assert resumed.session_id == welcome.session_id
    assert _token_checks() == {"signature": before["signature"] + 2, "known": before["known"] + 1}
    await second.close()
    await thief.close()


async def test_a_forged_or_foreign_session_is_refused_and_leaks_nothing(
    stack: Stack, app: App, bus: NATS
) -> None:
    events = DeviceEvents(bus)
    victim = await stack.connect(0)
    victim_session = (await _hello(victim, stack, app, "vic")).session_id
    await events.to_user(app.key, "vic", echo_pb2.EchoEvent(text="private"))
    await _texts(victim, 1)
    # Another user naming the victim's session: no such session of theirs.
    thief = await stack.connect(1)
    welcome = await _hello(thief, stack, app, "tom", resume=victim_session)
    assert welcome.resume == R.RESUME_OUTCOME_EXPIRED
    assert welcome.session_id != victim_session
    # Another device of the same user (another registration, another instance).
    other_device = await stack.connect(1)
    welcome = await _hello(other_device, stack, app, "vic", resume=victim_session)
    assert welcome.resume == R.RESUME_OUTCOME_REFUSED
    assert "another device" in welcome.resume_reason
    assert welcome.session_id != victim_session
    # Garbage as a session id.
    garbage = await stack.connect(0)
    welcome = await _hello(garbage, stack, app, "tom", resume="a.b*>c")
    assert welcome.resume == R.RESUME_OUTCOME_EXPIRED
    for c in (thief, garbage):
        with pytest.raises(TimeoutError):
            await c.ws.receive(timeout=0.3)  # nothing of the victim's was replayed
    # The victim's session was not disturbed.
    await events.to_user(app.key, "vic", echo_pb2.EchoEvent(text="still yours"))
    assert [t for _, t in await _texts(victim, 1)] == ["still yours"]
    assert [t for _, t in await _texts(other_device, 1)] == ["still yours"]
    for c in (victim, thief, other_device, garbage):
        await c.close()


async def test_more_missed_events_than_the_window_keeps_start_a_new_session(
    stack: Stack, app: App, bus: NATS
) -> None:
    events = DeviceEvents(bus)
    token = await stack.token(app, "ovi")
    c = await stack.connect(0)
    welcome = await _hello(c, stack, app, "ovi", token)
    for i in range(25):  # the window keeps 20 per device
        await events.to_user(app.key, "ovi", echo_pb2.EchoEvent(text=f"x{i}"))
    await _texts(c, 25)  # the old connection stays open (its network went silent, say)
    again = await stack.connect(1)
    fresh = await _hello(again, stack, app, "ovi", token, welcome.session_id, 0)
    assert fresh.resume == R.RESUME_OUTCOME_OVERFLOWED
    assert "20 or more events were missed" in fresh.resume_reason
    assert fresh.session_id != welcome.session_id
    with pytest.raises(TimeoutError):
        await again.ws.receive(timeout=0.3)  # a new session: nothing replayed
    # The device's old connection is closed all the same, and its record is gone.
    closed = await _closed_with(c)
    assert closed == framing.CLOSE_TAKEN_OVER
    await asyncio.sleep(0.2)
    assert await stack.gateway(1).presence.record(app.key, "ovi", welcome.session_id) is None
    await again.close()


async def test_a_deployment_without_a_window_says_so(
    own_nats: EmbeddedNats, postgres_server: EmbeddedPostgres, bus: NATS
) -> None:
    async with module_stack(
        own_nats.url, postgres_server, "test_nowin", event_window_seconds=0
    ) as s:
        app = await s.create_app()
        c = await s.connect()
        welcome = await _hello(c, s, app, "una")
        await c.close()
        again = await s.connect()
        fresh = await _hello(again, s, app, "una", resume=welcome.session_id)
        assert fresh.resume == R.RESUME_OUTCOME_DISABLED
        # Events are not numbered without a window.
        nc = await nats_py.connect(own_nats.url)
        await DeviceEvents(nc, window=False).to_user(app.key, "una", echo_pb2.EchoEvent(text="n"))
        frame = await again.recv()
        assert frame.event == 0 and frame.echo_event.text == "n"
        await nc.close()
        await again.close()


async def test_a_late_write_of_an_old_connection_cannot_undo_a_resume(
    stack: Stack, app: App
) -> None:
    """The old connection's gateway ends it just as the session is resumed elsewhere: its
    conditional write loses, and the record keeps naming the new connection."""
    token = await stack.token(app, "race")
    c = await stack.connect(0)
    welcome = await _hello(c, stack, app, "race", token)
    old = next(s for s in stack.gateway(0).sessions.values() if s.session_id == welcome.session_id)
    store = stack.gateway(0).presence
    revision = await store._revision_if_ours(old)  # read just before the resume lands
    assert revision is not None
    again = await stack.connect(1)
    resumed = await _hello(again, stack, app, "race", token, welcome.session_id, 0)
    assert resumed.resume == R.RESUME_OUTCOME_RESUMED
    # The old gateway's conditional writes, with the revision it read before: both lose.
    entry = store.entry(old, disconnected_at_ms=1)
    key = store.key(old)
    with pytest.raises(nats_py.js.errors.KeyWrongLastSequenceError):
        await store.kv.update(key, entry, last=revision, validate_keys=False)
    await store.disconnected(old, 1)  # reads again: no longer its connection, writes nothing
    await store.delete(old)
    record = await store.record(app.key, "race", welcome.session_id)
    assert record is not None and not record.disconnected_at_ms
    assert record.gateway_id == stack.gateway(1).gateway_id
    await c.close()
    await again.close()
