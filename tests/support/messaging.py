"""Messaging test helpers shared by the e2e and load tiers: a listener that writes down every
callback with its fields, and waiting for what it heard."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from parley_client import (
    Message,
    MessageClient,
    MessageClientListener,
    MessageDeliveryInfo,
    MessageFailureInfo,
    MessageReadInfo,
    ParleyClient,
)
from tests.support.wire import eventually


@dataclass
class Inbox(MessageClientListener):
    """What one client's message listener heard, in order."""

    incoming: list[Message] = field(default_factory=list)
    sent: list[tuple[Message, str]] = field(default_factory=list)
    delivered: list[MessageDeliveryInfo] = field(default_factory=list)
    failed: list[tuple[Message, MessageFailureInfo]] = field(default_factory=list)
    push: list[tuple[Message, list[Any]]] = field(default_factory=list)
    read: list[MessageReadInfo] = field(default_factory=list)
    typing: list[tuple[str, bool]] = field(default_factory=list)

    def on_incoming_message(self, client: MessageClient, message: Message) -> None:
        self.incoming.append(message)

    def on_message_sent(self, client: MessageClient, message: Message, recipient_id: str) -> None:
        self.sent.append((message, recipient_id))

    def on_message_delivered(self, client: MessageClient, info: MessageDeliveryInfo) -> None:
        self.delivered.append(info)

    def on_message_failed(
        self, client: MessageClient, message: Message, info: MessageFailureInfo
    ) -> None:
        self.failed.append((message, info))

    def on_should_send_push_data(
        self, client: MessageClient, message: Message, push_pairs: Sequence[Any]
    ) -> None:
        self.push.append((message, list(push_pairs)))

    def on_message_read(self, client: MessageClient, info: MessageReadInfo) -> None:
        self.read.append(info)

    def on_typing_changed(self, client: MessageClient, user_id: str, typing: bool) -> None:
        self.typing.append((user_id, typing))

    # -- questions ------------------------------------------------------------------------

    def incoming_ids(self) -> list[str]:
        return [m.message_id for m in self.incoming]

    def sent_pairs(self) -> Counter[tuple[str, str]]:
        return Counter((m.message_id, recipient) for m, recipient in self.sent)

    def delivered_pairs(self) -> Counter[tuple[str, str]]:
        return Counter((d.message_id, d.recipient_id) for d in self.delivered)

    async def wait(self, what: str, count: int, timeout: float = 10.0) -> None:
        """Until `what` (incoming, sent, delivered, failed, push, read, typing) holds at
        least `count` entries."""

        async def enough() -> bool:
            return len(getattr(self, what)) >= count

        await eventually(enough, timeout, f"{count} {what}")


def listen(client: ParleyClient) -> Inbox:
    inbox = Inbox()
    client.message_client.add_message_client_listener(inbox)
    return inbox


async def settle(seconds: float = 0.5) -> None:
    """Give late duplicates a chance to show (a test that expects none waits this long)."""
    await asyncio.sleep(seconds)
