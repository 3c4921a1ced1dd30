"""The gateway's listener backlog (PARLEY_LISTEN_BACKLOG): while the gateway is too busy to
accept, the kernel holds the connections that arrive (a reconnect storm) instead of
dropping their handshakes. Its own module: a stack of its own on the shared NATS."""

from __future__ import annotations

import contextlib
import select
import socket
import time
from pathlib import Path

import pytest

from parley_devstack.nats import EmbeddedNats
from parley_devstack.postgres import EmbeddedPostgres
from tests.integration.gateway_stack import module_stack

# Well above aiohttp's default backlog of 128, which dropped handshakes beyond it.
CONNECTIONS = 400


def _somaxconn() -> int:
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return 0


def _handshakes_completed(port: int, count: int, within: float) -> int:
    """Open `count` connections to 127.0.0.1:`port` at once; how many complete their TCP
    handshake within `within` seconds (nothing accepts them meanwhile)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            sockets.append(sock)
        pending = {sock.fileno(): sock for sock in sockets}
        completed = 0
        deadline = time.monotonic() + within
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLOUT)
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                sock = pending.pop(fd)
                poller.unregister(fd)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    completed += 1
        return completed
    finally:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()


async def test_connections_beyond_aiohttps_default_backlog_wait_in_the_kernel(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> None:
    """400 connections arriving while the gateway's event loop is busy all complete their
    handshake: the listener's backlog holds them until the gateway accepts (with aiohttp's
    default of 128 the kernel dropped the SYNs beyond it, and those clients waited 1 s and
    more to send them again)."""
    if _somaxconn() < CONNECTIONS:
        pytest.skip(f"net.core.somaxconn is {_somaxconn()}: the kernel caps the backlog below")
    async with module_stack(nats_server.url, postgres_server, "test_gwls") as stack:
        gateway = stack.gateway()
        assert gateway.settings.listen_backlog == 4096
        # The handshakes run on this thread, blocking the event loop (the gateway's): nothing
        # accepts them meanwhile.
        completed = _handshakes_completed(gateway.port, CONNECTIONS, within=1.0)
        assert completed == CONNECTIONS


async def test_a_small_backlog_drops_handshakes_the_gateway_has_not_accepted(
    nats_server: EmbeddedNats, postgres_server: EmbeddedPostgres
) -> None:
    """The same burst against a backlog of 16: the kernel completes about 17 handshakes and
    drops the rest (the check above can fail)."""
    async with module_stack(
        nats_server.url, postgres_server, "test_gwls", listen_backlog=16
    ) as stack:
        completed = _handshakes_completed(stack.gateway().port, CONNECTIONS, within=0.5)
        assert completed < CONNECTIONS // 2
