"""SIGTERM drains a gateway process: its clients move to the other replica, it exits 0."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support.wire import eventually

from .stack import E2EStack
from .test_presence_failover import online
from .test_registration import make_client


async def test_sigterm_drains_a_gateway_and_its_clients_move(
    stack: E2EStack, tmp_path: Path
) -> None:
    mover = make_client(stack, "drained", tmp_path / "m", gateways=["gateway-a", "gateway-b"])
    watcher = make_client(stack, "watcher", tmp_path / "w", gateways=["gateway-b"])
    await mover.start()
    await watcher.start()
    try:
        await mover.start_listening_on_active_connection()
        assert mover.gateway_id == "gateway-a"
        supervisor = stack.devstack.supervisor
        assert supervisor.kill("gateway-a", signal.SIGTERM)

        async def exited() -> bool:
            return not supervisor.status("gateway-a").running

        await eventually(exited, timeout=15, what="gateway-a exited after SIGTERM")
        status = supervisor.status("gateway-a")
        assert status.last_exit_code == 0, status.recent_output[-10:]
        assert any('"service_stopped"' in line for line in status.recent_output)

        async def moved() -> bool:
            return mover.is_started and mover.gateway_id == "gateway-b"

        await eventually(moved, timeout=5, what="client moved to gateway-b")
        await eventually(lambda: online(watcher, "drained"), what="drained client online again")
        # Drained, not crashed: only the new session is left in presence.
        assert (await watcher.presence(["drained"]))["drained"].devices == 1
    finally:
        await mover.terminate()
        await watcher.terminate()
