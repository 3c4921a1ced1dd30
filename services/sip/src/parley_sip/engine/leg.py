"""The asyncio face of one call: ``SipLeg`` and the ``IncomingInvite`` that becomes one.

They hold no pjsua2 object (those live on the engine's thread); they name their call by
an id and ask the engine to act on it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from parley_sip.engine.media import AudioPipe
from parley_sip.engine.types import SipEnd, SipError


class _Ops(Protocol):
    """What a leg asks of its engine (all run on the pjsua thread)."""

    async def hangup(self, leg_id: int, code: int) -> None: ...
    async def send_dtmf(self, leg_id: int, digits: str) -> None: ...
    async def answer(self, leg_id: int, code: int) -> None: ...


class SipLeg:
    """One SIP call, outbound or inbound, with its audio bridge."""

    def __init__(self, ops: _Ops, leg_id: int, outbound: bool) -> None:
        loop = asyncio.get_running_loop()
        self.id = leg_id
        self.outbound = outbound
        self.progressing = asyncio.Event()  # 180 or 183 received
        self.answered = asyncio.Event()  # confirmed and its audio connected
        self.ended: asyncio.Future[SipEnd] = loop.create_future()
        self.pipe = AudioPipe(loop)
        self.codec: str | None = None  # e.g. "PCMU/8000" once media is active
        self._ops = ops
        self._dtmf: Callable[[str], None] | None = None
        self._hanging_up = False

    def __repr__(self) -> str:
        state = "ended" if self.ended.done() else "answered" if self.answered.is_set() else "new"
        return f"<SipLeg {self.id} {'out' if self.outbound else 'in'} {state}>"

    async def wait_ended(self) -> SipEnd:
        return await asyncio.shield(self.ended)

    def on_dtmf(self, handler: Callable[[str], None] | None) -> None:
        """Digits (RFC 4733) received from the far end."""
        self._dtmf = handler

    async def send_dtmf(self, digits: str) -> None:
        """Send ``digits`` as RFC 4733 telephone-events (needs an answered leg)."""
        if self.ended.done():
            raise SipError("the SIP leg ended")
        await self._ops.send_dtmf(self.id, digits)

    async def hangup(self, code: int = 0) -> None:
        """CANCEL before answer, BYE after (idempotent; returns once it went out)."""
        if self.ended.done() or self._hanging_up:
            return
        self._hanging_up = True
        await self._ops.hangup(self.id, code)

    def write_audio(self, pcm: bytes) -> None:
        """48 kHz mono s16le towards the far phone (20 ms frames; the oldest beyond five
        waiting frames are dropped; silence when nothing waits)."""
        if not self.ended.done():
            self.pipe.write(pcm)

    async def read_audio(self) -> bytes:
        """The next 20 ms (1920 bytes) from the far phone; EOFError once the leg ended."""
        return await self.pipe.read()

    # called on the loop by the engine
    def _progress(self) -> None:
        self.progressing.set()

    def _answered(self, codec: str | None) -> None:
        self.codec = codec
        self.answered.set()

    def _digit(self, digit: str) -> None:
        if self._dtmf is not None:
            self._dtmf(digit)

    def _end(self, end: SipEnd) -> None:
        if not self.ended.done():
            self.ended.set_result(end)
        self.pipe.close()


class IncomingInvite:
    """An INVITE received: answer, ring or reject it."""

    def __init__(
        self,
        leg: SipLeg,
        *,
        to_user: str,
        from_uri: str,
        request_uri: str,
        headers: dict[str, str],
    ) -> None:
        self.leg = leg
        self.to_user = to_user
        self.from_uri = from_uri
        self.request_uri = request_uri
        self.headers = headers  # its X- headers, names lower-cased
        self._answered = False

    def __repr__(self) -> str:
        return f"<IncomingInvite to={self.to_user!r} from={self.from_uri!r}>"

    async def ring(self) -> None:
        """Send 180 Ringing."""
        self._check_live()
        await self.leg._ops.answer(self.leg.id, 180)

    async def answer(self) -> SipLeg:
        """Send 200 OK with media; the leg's ``answered`` is set once the ACK came."""
        self._check_live()
        await self.leg._ops.answer(self.leg.id, 200)
        self._answered = True
        return self.leg

    async def reject(self, code: int = 486) -> None:
        """Refuse the call with a final error response."""
        if self.leg.ended.done():
            return
        await self.leg.hangup(code)

    def _check_live(self) -> None:
        if self.leg.ended.done():
            raise SipError(f"the caller is gone ({self.leg.ended.result().code})")


IncomingHandler = Callable[[IncomingInvite], Awaitable[None]]
