"""The echo capability's client side: a `Feature` of the reference client, as calls and
messaging plug in."""

from __future__ import annotations

import asyncio

from parley.v1 import echo_pb2
from parley_client import Connected, Feature, FeatureLink
from parley_protocol.pb import client as pb


class EchoFeature(Feature):
    name = "echo"
    bodies = frozenset({"echo_event"})

    def __init__(self, block_seconds: float = 0.0) -> None:
        self._link: FeatureLink | None = None
        self.events: asyncio.Queue[echo_pb2.EchoEvent] = asyncio.Queue()
        # Each event handler sleeps this long first (to show it delays no other feature).
        self.block_seconds = block_seconds
        self.connections: list[Connected] = []

    def attached(self, link: FeatureLink) -> None:
        self._link = link

    async def echo(self, text: str, **fields: object) -> echo_pb2.EchoReply:
        assert self._link is not None, "add the feature to a client first"
        request = echo_pb2.EchoRequest(text=text, **fields)  # type: ignore[arg-type]
        return await self._link.request(request, echo_pb2.EchoReply)

    async def on_connected(self, connected: Connected) -> None:
        self.connections.append(connected)

    async def on_frame(self, envelope: pb.Envelope) -> None:
        if self.block_seconds:
            await asyncio.sleep(self.block_seconds)
        await self.events.put(envelope.echo_event)
