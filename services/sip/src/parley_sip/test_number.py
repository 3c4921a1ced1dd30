"""The test number (+46000000000 by default): no trunk and no credit. The leg answers at
once, waits for the client's media to connect, plays the prompt, and hangs up."""

from __future__ import annotations

import asyncio

from parley_legs.leg import AudioLeg
from parley_legs.webrtc import FRAME_SAMPLES, SAMPLE_RATE
from parley_sip.metrics import LEG_METRICS
from parley_sip.prompt import prompt_frames

FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
# How long the client's media may take to connect after the answer.
CONNECT_TIMEOUT_SECONDS = 15.0
# Silence before the prompt (the client's jitter buffer fills) and after it (its tail is
# heard before the hang-up).
LEAD_FRAMES = 10
TAIL_FRAMES = 15


class TestNumberLeg(AudioLeg):
    kind = "test_number"
    metrics = LEG_METRICS
    __test__ = False  # not a test class, whatever its name

    async def run(self) -> None:
        if not await self.report_answer():
            await self.end("caller_hung_up")
            return
        await self.wait_any(
            self.webrtc.connected,
            self.caller_gone,
            self.media_gone,
            timeout=CONNECT_TIMEOUT_SECONDS,
        )
        if not self.webrtc.connected.is_set():
            await self.end("media_failed" if not self.caller_gone.is_set() else "caller_hung_up")
            return
        silence = bytes(FRAME_SAMPLES * 2)
        frames = [silence] * LEAD_FRAMES + list(prompt_frames()) + [silence] * TAIL_FRAMES
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, frame in enumerate(frames):
            if self.caller_gone.is_set() or self.media_gone.is_set():
                await self.end("caller_hung_up")
                return
            self.webrtc.send(frame)
            delay = start + (index + 1) * FRAME_SECONDS - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await self.end("prompt_played")
