"""Presence rules without a server: the NATS version check, gateway liveness from beats."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import ServerVersion

from parley.v1 import presence_pb2
from parley_protocol.clock import FakeClock
from parley_service.presence import GatewayLiveness, check_server_version


class _Connected:
    def __init__(self, version: str) -> None:
        self.connected_server_version = ServerVersion(version)


@pytest.mark.parametrize("version", ["2.11.0", "2.15.1", "3.0.0"])
def test_a_recent_nats_server_is_accepted(version: str) -> None:
    check_server_version(_Connected(version))  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["2.10.22", "2.9.0", "0.0.0-unknown"])
def test_an_older_nats_server_is_refused_with_the_reason(version: str) -> None:
    with pytest.raises(RuntimeError, match=r"too old: Parley needs 2\.11 or newer"):
        check_server_version(_Connected(version))  # type: ignore[arg-type]


def _beat(gateway_id: str, interval_ms: int = 0, alive: bool = True) -> Any:
    return presence_pb2.GatewayHeartbeat(
        gateway_id=gateway_id, alive=alive, interval_ms=interval_ms
    )


def test_a_gateway_is_gone_after_three_of_its_own_intervals() -> None:
    clock = FakeClock()
    liveness = GatewayLiveness(None, clock, own_gateway_id="me")  # type: ignore[arg-type]
    liveness._started_at = clock.monotonic()
    liveness.heard(_beat("fast", 1000))
    liveness.heard(_beat("slow", 10_000))
    liveness.heard(_beat("quiet"))  # no interval announced: 2 s assumed
    clock.advance(7)  # past the start-up window (6 s)
    assert not liveness.is_live("fast")  # 7 s > 3 x 1 s
    assert liveness.is_live("slow")  # 7 s < 3 x 10 s
    assert not liveness.is_live("quiet")  # 7 s > 3 x 2 s
    assert not liveness.is_live("never-heard")
    assert liveness.is_live("me")
    assert liveness.live_peers() == {"slow"}
    liveness.heard(_beat("slow", 10_000, alive=False))  # its goodbye
    assert not liveness.is_live("slow")


def test_every_gateway_counts_until_the_reader_has_listened_long_enough() -> None:
    clock = FakeClock()
    liveness = GatewayLiveness(None, clock)  # type: ignore[arg-type]
    liveness._started_at = clock.monotonic()
    assert liveness.is_live("anyone")
    clock.advance(liveness.startup_window)
    assert not liveness.is_live("anyone")
