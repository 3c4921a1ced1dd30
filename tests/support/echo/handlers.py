"""The echo service's one client request: answer with the caller the gateway verified, and
tell the caller's other devices."""

from __future__ import annotations

import asyncio

from parley.v1 import echo_pb2
from parley_service.client_requests import Caller
from parley_service.devices import DeviceEvents

MAX_DELAY_MS = 10_000


class EchoHandlers:
    def __init__(self, events: DeviceEvents, instance_id: str) -> None:
        self._events = events
        self._instance_id = instance_id
        self.seen: list[tuple[Caller, echo_pb2.EchoRequest]] = []

    async def echo(self, caller: Caller, request: echo_pb2.EchoRequest) -> echo_pb2.EchoReply:
        self.seen.append((caller, request))
        if request.delay_ms:
            await asyncio.sleep(min(request.delay_ms, MAX_DELAY_MS) / 1000)
        if request.notify_other_devices:
            # The identity comes from the caller; request.claimed_* is never used.
            await self._events.to_user(
                caller.application_key,
                caller.user_id,
                echo_pb2.EchoEvent(text=request.text, from_connection_id=caller.connection_id),
                except_session_id=caller.session_id,
            )
        return echo_pb2.EchoReply(
            text=request.text, caller=caller.to_proto(), answered_by=self._instance_id
        )
