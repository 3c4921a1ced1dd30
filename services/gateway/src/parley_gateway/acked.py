"""JetStream publishes whose acknowledgements come back on one shared inbox.

nats-py's `js.publish` makes each message a request: a reply token from the OS's random
source, a `wait_for`, then the acknowledgement decoded from JSON into a PubAck. The
presence writer publishes two entries per sign-in and every entry again each refresh
round (500 a second at 20,000 sessions), and needs nothing of the acknowledgement but
"stored" or why not. Here each publish names `<inbox>.<n>` as its reply, one subscription
takes every acknowledgement, and a publish costs a future and a timer; the errors are
those `js.publish` raises.
"""

from __future__ import annotations

import asyncio
import json

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

# The server's status for a publish no stream listens to.
NO_RESPONDERS = "503"
DEFAULT_TIMEOUT_SECONDS = 5.0


class AckedPublisher:
    def __init__(self, nc: NATS, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._nc = nc
        self._timeout = timeout
        self._prefix = ""
        self._next = 0
        # Reply token -> the publish waiting for its acknowledgement, and its timeout.
        self._waiting: dict[str, tuple[asyncio.Future[None], asyncio.TimerHandle]] = {}
        self._sub: Subscription | None = None

    @property
    def waiting(self) -> int:
        """Publishes not yet acknowledged."""
        return len(self._waiting)

    async def start(self) -> None:
        """Subscribe to the acknowledgements (once; nats-py renews it after a reconnect)."""
        if self._sub is None:
            self._prefix = self._nc.new_inbox() + "."
            self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_ack)

    async def publish(self, subject: str, payload: bytes) -> asyncio.Future[None]:
        """Queue the message on the connection; the future settles with its acknowledgement:
        None once stored, else the error `js.publish` would raise (NoStreamResponseError,
        APIError, or nats.errors.TimeoutError after the timeout)."""
        if self._sub is None:
            raise RuntimeError("AckedPublisher.start() was not called")
        self._next += 1
        token = str(self._next)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(self._timeout, self._expire, token)
        self._waiting[token] = (future, timer)
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token)
        except BaseException:
            del self._waiting[token]
            timer.cancel()
            raise
        return future

    async def _on_ack(self, msg: Msg) -> None:
        token = msg.subject[len(self._prefix) :]
        headers = msg.headers
        if headers and headers.get("Status"):
            status = headers["Status"]
            error: BaseException | None = (
                nats.js.errors.NoStreamResponseError()
                if status == NO_RESPONDERS
                else nats.js.errors.APIError(
                    code=int(status) if status.isdigit() else None,
                    description=headers.get("Description", ""),
                )
            )
        elif b'"error"' in msg.data:
            error = _api_error(msg.data)
        else:
            error = None
        self._settle(token, error)

    def _expire(self, token: str) -> None:
        self._settle(token, nats.errors.TimeoutError())

    def _settle(self, token: str, error: BaseException | None) -> None:
        waiting = self._waiting.pop(token, None)
        if waiting is None:
            return  # acknowledged after its timeout, or not ours
        future, timer = waiting
        timer.cancel()
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


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
