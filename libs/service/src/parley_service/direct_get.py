"""Batched direct gets from a stream (NATS 2.11+): many messages in one request, no consumer.

Used by the presence reader (the latest entry of many keys at once) and by the gateway's
resume window (the events of a user after a sequence). The replies of every direct get on
a connection come to its `ReplyInbox`, so a get costs no SUB and UNSUB and no subscription
task of its own: a gateway taking back the sessions of a replica that went away makes one
per resume.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.js.api import DEFAULT_PREFIX

from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.replies import ReplyInbox


@dataclass(frozen=True)
class Stored:
    """One message as a direct get returns it."""

    headers: dict[str, str]
    data: bytes

    @property
    def subject(self) -> str:
        return self.headers.get("Nats-Subject", "")

    @property
    def sequence(self) -> int:
        value = self.headers.get("Nats-Sequence", "0")
        return int(value) if value.isdigit() else 0


async def direct_get(
    nc: NATS, stream: str, request: dict[str, object], what: str, timeout: float = 2.0
) -> tuple[list[Stored], int]:
    """The messages of one batched direct get (`request`: e.g. {"multi_last": [...]} or
    {"seq": n, "next_by_subj": s, "batch": k}), and how many more match after them.

    Raises ParleyError UNAVAILABLE (`what` answered an error status) or TIMEOUT (no message
    within `timeout` of the request or of the previous message).
    """
    replies = await ReplyInbox.of(nc)
    reply, queue = replies.many()
    found: list[Stored] = []
    try:
        await nc.publish(
            f"{DEFAULT_PREFIX}.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=reply
        )
        while True:
            try:
                msg = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError as exc:
                raise ParleyError(
                    ErrorCode.ERROR_CODE_TIMEOUT, f"{what} did not answer in time"
                ) from exc
            headers = dict(msg.headers or {})
            status = headers.get("Status")
            if status == "404":  # nothing (more) matched
                return found, 0
            if status == "204":  # end of the batch
                pending = headers.get("Nats-Num-Pending", "0")
                return found, int(pending) if pending.isdigit() else 0
            if status:
                raise ParleyError(
                    ErrorCode.ERROR_CODE_UNAVAILABLE,
                    f"{what} answered {status} {headers.get('Description', '')}".rstrip(),
                )
            found.append(Stored(headers, msg.data))
    finally:
        replies.forget(reply)
