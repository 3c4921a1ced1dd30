"""Parties of calls in tests: a user's client, the calls it got, and what every call's
listener heard (shared by the unit and end-to-end call tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from parley_client import (
    Call,
    CallClient,
    CallClientListener,
    CallListener,
    CallState,
    ParleyClient,
    PushPair,
)
from tests.support.wire import eventually


class CallEvents(CallListener):
    """What one call's listener heard, in order ("progressing", "established", "ended:CAUSE",
    "push", "video-added", "video-paused", "video-resumed", "dtmf:DIGITS")."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.push_pairs: list[Sequence[PushPair]] = []
        self.states: list[CallState] = []  # the call's state as each event was heard

    def _note(self, call: Call, what: str) -> None:
        self.heard.append(what)
        self.states.append(call.state)

    def on_call_progressing(self, call: Call) -> None:
        self._note(call, "progressing")

    async def on_call_established(self, call: Call) -> None:
        await asyncio.sleep(0)  # a coroutine on purpose: the call awaits it
        self._note(call, "established")

    def on_call_ended(self, call: Call) -> None:
        cause = call.details.end_cause
        self._note(call, f"ended:{cause.name if cause else None}")

    def on_should_send_push_notification(self, call: Call, push_pairs: Sequence[PushPair]) -> None:
        self.push_pairs.append(push_pairs)
        self._note(call, "push")

    def on_video_track_added(self, call: Call) -> None:
        self._note(call, "video-added")

    def on_video_track_paused(self, call: Call) -> None:
        self._note(call, "video-paused")

    def on_video_track_resumed(self, call: Call) -> None:
        self._note(call, "video-resumed")

    async def on_dtmf_received(self, call: Call, digits: str) -> None:
        self._note(call, f"dtmf:{digits}")


@dataclass
class Party:
    """One user's client, the calls it got, and what each call's listener heard."""

    client: ParleyClient
    incoming: list[Call] = field(default_factory=list)
    events: dict[str, CallEvents] = field(default_factory=dict)

    @property
    def calls(self) -> CallClient:
        return self.client.call_client

    def call(self, user_id: str, video: bool = False, **headers: str) -> Call:
        place = self.calls.call_user_video if video else self.calls.call_user
        call = place(user_id, headers or None)
        self.follow(call)
        return call

    def follow(self, call: Call) -> CallEvents:
        events = self.events[call.call_id] = CallEvents()
        call.add_call_listener(events)
        return events

    def heard(self, call: Call) -> list[str]:
        return self.events[call.call_id].heard

    async def next_incoming(self, count: int = 1, timeout: float = 5.0) -> Call:
        async def arrived() -> bool:
            return len(self.incoming) >= count

        await eventually(arrived, timeout, "an incoming call")
        return self.incoming[count - 1]


class Follower(CallClientListener):
    """Takes every incoming call of a party and listens to it (a coroutine on purpose)."""

    def __init__(self, party: Party) -> None:
        self.party = party

    async def on_incoming_call(self, call_client: CallClient, call: Call) -> None:
        await asyncio.sleep(0)
        self.party.follow(call)
        self.party.incoming.append(call)


async def established_call(alice: Party, bob: Party, video: bool = False) -> tuple[Call, Call]:
    call = alice.call(bob.client.user_id or "", video=video)
    incoming = await bob.next_incoming(len(bob.incoming) + 1)
    await incoming.answer()
    await call.wait_established(5)
    await incoming.wait_established(5)
    return call, incoming
