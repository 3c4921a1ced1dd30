"""SIGTERM drains a gateway process: its clients move to the other replica, it exits 0."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support.wire import eventually

from .stack import E2EStack
from .test_presence_failover import mover_and_watcher, online


async def test_sigterm_drains_a_gateway_and_its_clients_move(
    stack: E2EStack, tmp_path: Path
) -> None:
    async with mover_and_watcher(stack, tmp_path, "drained") as (mover, watcher):
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
