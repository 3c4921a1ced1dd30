"""flush_queued on a real server: the subscription queued before it is on the wire before
the PING (nats-py's own flush writes the PING first), so a request sent from another
connection once it returns finds the responder."""

from __future__ import annotations

from typing import Any

import nats

from parley_devstack.nats import EmbeddedNats
from parley_service.bus import flush_queued
from tests.support.wire import bounded


def _record_writes(nc: Any) -> list[bytes]:
    written: list[bytes] = []
    transport = nc._transport
    write, write_lines = transport.write, transport.writelines

    def one(data: bytes) -> None:
        written.append(bytes(data))
        write(data)

    def many(lines: list[bytes]) -> None:
        written.append(b"".join(lines))
        write_lines(lines)

    transport.write, transport.writelines = one, many
    return written


@bounded(20)
async def test_a_subscription_is_on_the_wire_before_the_flush_ping(
    nats_server: EmbeddedNats,
) -> None:
    service = await nats.connect(nats_server.url)
    caller = await nats.connect(nats_server.url)
    try:
        written = _record_writes(service)

        async def answer(msg: Any) -> None:
            await msg.respond(b"here")

        await service.subscribe("parley.test.flush_queued", cb=answer)
        await flush_queued(service)
        stream = b"".join(written)
        assert stream.index(b"SUB parley.test.flush_queued") < stream.index(b"PING\r\n")
        reply = await caller.request("parley.test.flush_queued", b"?", timeout=2)
        assert reply.data == b"here"

        # nats-py's flush alone puts the PING ahead of a SUB still queued.
        written.clear()
        await service.subscribe("parley.test.flush_plain", cb=answer)
        await service.flush()
        stream = b"".join(written)
        assert stream.index(b"PING\r\n") < stream.index(b"SUB parley.test.flush_plain")
    finally:
        await caller.close()
        await service.close()
