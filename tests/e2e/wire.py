"""A raw wire-level client for e2e tests that send what the reference client never would."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from parley_protocol import framing
from parley_protocol.pb import client as pb
from parley_protocol.signatures import self_signed_registration


async def register(
    http_base: str, app_key: str, secret: str, user_id: str
) -> tuple[int, dict[str, Any]]:
    """POST /v1/register (self-signed scheme); returns (status, JSON body)."""
    ts = int(time.time() * 1000)
    body = {
        "application_key": app_key,
        "user_id": user_id,
        "scheme": "REGISTRATION_SCHEME_APPLICATION_SECRET",
        "signature": self_signed_registration(user_id, app_key, ts, secret),
        "timestamp_ms": str(ts),
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{http_base}/v1/register", json=body) as resp:
            return resp.status, await resp.json(content_type=None)


async def access_token(http_base: str, app_key: str, secret: str, user_id: str) -> str:
    status, body = await register(http_base, app_key, secret, user_id)
    assert status == 200, body
    return str(body["token"]["token"])


class RawSession:
    """One WebSocket to /v1/connect, speaking Envelope frames by hand."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http = http
        self.ws = ws
        self.seq = 0

    @classmethod
    async def open(cls, ws_url: str) -> RawSession:
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(ws_url, max_msg_size=0)
        return cls(http, ws)

    async def send(self, envelope: pb.Envelope, seq: int | None = None) -> int:
        """Send with the next sequence number, or with `seq` as given (the count goes on)."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        envelope.seq = seq
        await self.ws.send_bytes(framing.encode(envelope))
        return seq

    async def send_raw(self, data: bytes | str) -> None:
        if isinstance(data, str):
            await self.ws.send_str(data)
        else:
            await self.ws.send_bytes(data)

    async def recv(self, timeout: float = 5.0) -> pb.Envelope:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.BINARY, f"expected a frame, got {msg.type}: {msg.data}"
        env = pb.Envelope()
        env.ParseFromString(msg.data)
        return env

    async def expect_close(self, timeout: float = 5.0) -> int:
        """Wait for the server to close; return the close code."""
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
            ):
                return int(self.ws.close_code or 0)
            assert msg.type == aiohttp.WSMsgType.BINARY, msg

    async def hello(self, token: str, app_key: str, user_id: str) -> pb.Envelope:
        await self.send(
            pb.Envelope(
                hello=pb.Hello(
                    access_token=token,
                    application_key=app_key,
                    user_id=user_id,
                    capabilities=pb.Capabilities(messaging=True),
                    client_version="e2e-raw",
                )
            )
        )
        return await self.recv()

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()
