"""Wire-level test helpers shared by the integration and e2e tiers: registration bodies,
a raw WebSocket client that sends what the reference client never would, and waiting."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import aiohttp

from parley.v1 import common_pb2
from parley_protocol import signatures
from parley_protocol.pb import client

T = TypeVar("T", bound=Callable[..., Awaitable[Any]])

SERVER_SCHEME = "REGISTRATION_SCHEME_APPLICATION_SERVER"
SECRET_SCHEME = "REGISTRATION_SCHEME_APPLICATION_SECRET"


def registration_body(
    app_key: str, secret: str, user_id: str, sequence: int | None = None
) -> dict[str, Any]:
    """A /v1/register body: app-server scheme when a sequence is given, else self-signed."""
    if sequence is not None:
        return {
            "application_key": app_key,
            "user_id": user_id,
            "scheme": SERVER_SCHEME,
            "signature": signatures.registration_signature(user_id, app_key, sequence, secret),
            "sequence": str(sequence),
        }
    ts = int(time.time() * 1000)
    return {
        "application_key": app_key,
        "user_id": user_id,
        "scheme": SECRET_SCHEME,
        "signature": signatures.self_signed_registration(user_id, app_key, ts, secret),
        "timestamp_ms": str(ts),
    }


def bounded(seconds: float) -> Callable[[T], T]:
    """Fail an async test that takes over `seconds` with a TimeoutError whose traceback shows
    where it waited (a plain test timeout only shows the event loop idling)."""

    def wrap(test: T) -> T:
        @functools.wraps(test)
        async def run(*args: Any, **kwargs: Any) -> Any:
            async with asyncio.timeout(seconds):
                return await test(*args, **kwargs)

        return cast(T, run)

    return wrap


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 5.0, what: str = "condition"
) -> float:
    """Poll `check` until it is true; return the seconds it took, or fail naming `what`."""
    began = time.monotonic()
    while not await check():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what} not reached within {timeout:g} s")
        await asyncio.sleep(0.1)  # under a session's frame rate limit when `check` asks the gateway
    return time.monotonic() - began


class RawClient:
    """A client speaking the wire protocol by hand: numbered Envelope frames."""

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, owned: aiohttp.ClientSession | None = None
    ) -> None:
        self.ws = ws
        self.seq = 0
        self.welcome = client.Welcome()
        self.pings_unanswered = 0
        self._owned = owned

    @classmethod
    async def open(cls, ws_url: str) -> RawClient:
        """Connect with an HTTP session of its own (closed by `close()`)."""
        http = aiohttp.ClientSession()
        return cls(await http.ws_connect(ws_url, max_msg_size=0), owned=http)

    async def send_raw(self, data: bytes | str) -> None:
        """Send a frame as given: garbage, text, oversized."""
        if isinstance(data, str):
            await self.ws.send_str(data)
        else:
            await self.ws.send_bytes(data)

    async def send(self, seq: int | None = None, **body: Any) -> int:
        if seq is None:
            self.seq += 1
            seq = self.seq
        await self.ws.send_bytes(client.Envelope(seq=seq, **body).SerializeToString())
        return seq

    async def recv(self, timeout: float = 5.0) -> client.Envelope:
        msg = await self.ws.receive(timeout)
        while msg.type == aiohttp.WSMsgType.PING:  # only seen with autoping off: not answered
            self.pings_unanswered += 1
            msg = await self.ws.receive(timeout)
        assert msg.type == aiohttp.WSMsgType.BINARY, f"expected a frame, got {msg}"
        return client.Envelope.FromString(msg.data)

    async def request(self, timeout: float = 5.0, **body: Any) -> client.Envelope:
        seq = await self.send(**body)
        reply = await self.recv(timeout)
        assert reply.reply_to == seq, reply
        assert reply.WhichOneof("body") != "error", reply
        return reply

    async def send_hello(self, token: str, app_key: str, user_id: str) -> client.Envelope:
        """Send a Hello; return whatever answers it (Welcome or Error)."""
        await self.send(
            hello=client.Hello(
                access_token=token,
                application_key=app_key,
                user_id=user_id,
                capabilities=client.Capabilities(calling=True, messaging=True),
                client_version="tests",
            )
        )
        return await self.recv()

    async def hello(self, token: str, app_key: str, user_id: str) -> client.Welcome:
        """Sign in; fails unless a Welcome answers."""
        reply = await self.send_hello(token, app_key, user_id)
        assert reply.WhichOneof("body") == "welcome" and reply.reply_to == self.seq, reply
        self.welcome = reply.welcome
        return reply.welcome

    async def ping(self) -> client.Pong:
        reply = await self.request(ping=client.Ping(client_time_ms=123))
        return reply.pong

    async def expect_error(self, code: int, reply_to: int | None = None) -> client.Error:
        env = await self.recv()
        assert env.WhichOneof("body") == "error", env
        assert env.error.code == code, env.error
        if reply_to is not None:
            assert env.reply_to == reply_to, env
        return env.error

    async def expect_close(self, code: int, timeout: float = 5.0) -> None:
        msg = await self.ws.receive(timeout)
        assert msg.type == aiohttp.WSMsgType.CLOSE, f"expected a close, got {msg}"
        assert msg.data == code, f"closed with {msg.data} ({msg.extra!r}), expected {code}"

    async def close(self) -> None:
        await self.ws.close()
        if self._owned is not None:
            await self._owned.close()


class SignedInDevice:
    """One signed-in raw device of `user`: a request waits for its reply, and the events
    that arrive meanwhile are kept, in order, for `event`. Tests of a capability subclass it
    with that capability's requests."""

    def __init__(self, raw: RawClient, user: str) -> None:
        self.raw = raw
        self.user = user
        self.session_id = raw.welcome.session_id
        self._kept: list[client.Envelope] = []

    async def request(self, timeout: float = 5.0, **body: Any) -> client.Envelope:
        seq = await self.raw.send(**body)
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.raw.recv(timeout)
                if frame.reply_to == seq:
                    return frame
                self._kept.append(frame)

    async def ok(self, **body: Any) -> client.Envelope:
        reply = await self.request(**body)
        assert reply.WhichOneof("body") != "error", reply
        return reply

    async def refused(self, code: int, **body: Any) -> common_pb2.Error:
        reply = await self.request(**body)
        assert reply.WhichOneof("body") == "error", reply
        assert reply.error.code == code, reply.error
        return reply.error

    async def event(self, body: str, timeout: float = 5.0) -> client.Envelope:
        """The first event of this kind (kept, or the next to arrive)."""
        for index, frame in enumerate(self._kept):
            if frame.WhichOneof("body") == body:
                return self._kept.pop(index)
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.raw.recv(timeout)
                if frame.WhichOneof("body") == body and not frame.reply_to:
                    return frame
                self._kept.append(frame)

    async def quiet(self, body: str, seconds: float = 0.5) -> None:
        """No event of this kind within `seconds`."""
        try:
            await self.event(body, timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"a {body} event came, and none was expected")
