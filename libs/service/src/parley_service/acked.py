"""JetStream publishes whose acknowledgements come back on the connection's reply inbox.

nats-py's `js.publish` makes each message a request: a reply token from the OS's random
source, a `wait_for`, then the acknowledgement decoded from JSON into a PubAck. The
presence writer publishes two entries per sign-in (and one in 16 of a refresh round's
acknowledged), and device events go out with every message; none
needs anything of the acknowledgement but "stored" or why not. Here each publish waits on
the connection's `ReplyInbox`: a publish costs a future and a timer; the errors are those
`js.publish` raises.
"""

from __future__ import annotations

import asyncio
import json

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from parley_service.replies import NO_RESPONDERS, STATUS_HEADER, ReplyInbox

DEFAULT_TIMEOUT_SECONDS = 5.0


class AckedPublisher:
    def __init__(self, nc: NATS, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._nc = nc
        self._timeout = timeout
        self._inbox: ReplyInbox | None = None

    @property
    def waiting(self) -> int:
        """Requests of this connection whose replies are still awaited."""
        return 0 if self._inbox is None else self._inbox.waiting

    async def start(self) -> None:
        """Subscribe the connection's reply inbox (once; nats-py renews it after a
        reconnect)."""
        if self._inbox is None:
            self._inbox = await ReplyInbox.of(self._nc)

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> asyncio.Future[None]:
        """Queue the message on the connection; the future settles with its acknowledgement:
        None once stored, else the error `js.publish` would raise (NoStreamResponseError,
        APIError, or nats.errors.TimeoutError after the timeout)."""
        if self._inbox is None:
            raise RuntimeError("AckedPublisher.start() was not called")
        reply, acked = self._inbox.one(self._timeout, _acknowledged)
        try:
            await self._nc.publish(subject, payload, reply=reply, headers=headers or None)
        except BaseException:
            self._inbox.forget(reply)
            raise
        return acked

    async def stored(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Publish and wait for the acknowledgement (errors as `publish` gives them)."""
        await (await self.publish(subject, payload, headers))


def _acknowledged(msg: Msg) -> None:
    """Return when the acknowledgement says "stored"; else raise its error as nats-py
    does."""
    headers = msg.headers
    if headers and headers.get(STATUS_HEADER):
        status = headers[STATUS_HEADER]
        if status == NO_RESPONDERS:
            raise nats.js.errors.NoStreamResponseError()
        raise nats.js.errors.APIError(
            code=int(status) if status.isdigit() else None,
            description=headers.get("Description", ""),
        )
    if b'"error"' in msg.data:
        raise _api_error(msg.data)


def _api_error(data: bytes) -> BaseException:
    """The error of a JetStream reply that carries one, as nats-py makes it."""
    try:
        reply = json.loads(data)
        nats.js.errors.APIError.from_error(reply["error"])
    except nats.js.errors.APIError as exc:
        return exc
    except (ValueError, KeyError, TypeError) as exc:
        return nats.js.errors.APIError(description=f"unreadable acknowledgement: {exc}")
    return nats.js.errors.APIError(description="unreadable acknowledgement")
