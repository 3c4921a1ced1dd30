"""Presence queries shared by concurrent sends (parley_messaging.online), with a fake presence."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from parley_messaging.online import OnlineUsers
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.presence import MAX_QUERY_USERS


@dataclass
class Device:
    messaging: bool
    session_id: str = "s1"


class FakePresence:
    def __init__(self, online: dict[str, bool]) -> None:
        self.online = online  # user -> a device with messaging (absent: no device)
        self.queries: list[tuple[str, list[str]]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: BaseException | None = None

    async def devices(self, app: str, users: Sequence[str]) -> dict[str, list[Any]]:
        self.queries.append((app, list(users)))
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {u: [Device(self.online[u])] if u in self.online else [] for u in users}


async def test_sends_that_arrive_while_a_query_runs_share_the_next_one() -> None:
    presence = FakePresence({"bob": True, "carol": False})
    online = OnlineUsers(presence)  # type: ignore[arg-type]
    online.start()
    try:
        assert await online.offline("app", ["bob", "carol", "dave"]) == ["carol", "dave"]
        presence.gate.clear()
        first = asyncio.ensure_future(online.offline("app", ["bob"]))
        await asyncio.sleep(0.01)  # the first query runs; the next sends wait for it
        more = [asyncio.ensure_future(online.offline("app", [f"u{i}", "bob"])) for i in range(50)]
        other = asyncio.ensure_future(online.offline("other", ["bob"]))
        await asyncio.sleep(0.01)
        presence.gate.set()
        assert await first == []
        assert [await m for m in more] == [[f"u{i}"] for i in range(50)]
        assert await other == []
        # 1 + 1 (the lone send) + one per application for the 51 that waited together
        assert len(presence.queries) == 4
        assert sorted(app for app, _ in presence.queries[2:]) == ["app", "other"]
        big = next(users for app, users in presence.queries[2:] if app == "app")
        assert len(big) == 51 and len(set(big)) == 51  # bob once
    finally:
        await online.stop()


async def test_sessions_name_each_users_messaging_devices() -> None:
    presence = FakePresence({"bob": True, "carol": False})
    online = OnlineUsers(presence)  # type: ignore[arg-type]
    online.start()
    try:
        found = await online.ask("app", ["bob", "carol", "dave"])
        assert found == {"bob": frozenset({"s1"}), "carol": frozenset(), "dave": frozenset()}
    finally:
        await online.stop()


async def test_a_bug_answering_fails_the_waiting_sends_instead_of_hanging() -> None:
    class Broken(FakePresence):
        async def devices(self, app: str, users: Sequence[str]) -> dict[str, list[Any]]:
            return {u: [object()] for u in users}  # no .messaging: the answer breaks

    online = OnlineUsers(Broken({}))  # type: ignore[arg-type]
    online.start()
    try:
        with pytest.raises(ParleyError):
            await asyncio.wait_for(online.ask("app", ["bob"]), 2)
        assert await asyncio.wait_for(online.offline("app", ["bob"]), 2) == ["bob"]
    finally:
        await online.stop()


async def test_more_users_than_one_query_takes_are_split() -> None:
    presence = FakePresence({})
    online = OnlineUsers(presence)  # type: ignore[arg-type]
    online.start()
    try:
        presence.gate.clear()
        blocker = asyncio.ensure_future(online.offline("app", ["x"]))
        await asyncio.sleep(0.01)
        sends = [
            asyncio.ensure_future(
                online.offline("app", [f"u{i}" for i in range(k * 10, k * 10 + 10)])
            )
            for k in range(25)
        ]
        await asyncio.sleep(0.01)
        presence.gate.set()
        await blocker
        answers = [await s for s in sends]
        assert sum(len(a) for a in answers) == 250
        assert all(len(users) <= MAX_QUERY_USERS for _, users in presence.queries)
        assert len(presence.queries) == 1 + 3
    finally:
        await online.stop()


@pytest.mark.parametrize(
    "failure",
    [ParleyError(ErrorCode.ERROR_CODE_TIMEOUT, "slow"), RuntimeError("bug")],
)
async def test_when_presence_cannot_say_every_recipient_counts_as_offline(
    failure: BaseException,
) -> None:
    presence = FakePresence({"bob": True})
    presence.fail = failure
    online = OnlineUsers(presence)  # type: ignore[arg-type]
    online.start()
    try:
        assert await online.offline("app", ["bob", "carol"]) == ["bob", "carol"]
        presence.fail = None
        assert await online.offline("app", ["bob", "carol"]) == ["carol"]
    finally:
        await online.stop()
