"""When and where a client reconnects: drains, passing failures, rate limiting."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest

from parley_client import ErrorType, ParleyError, backoff
from parley_client.backoff import first_replica, reconnect_delay
from parley_protocol import framing
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from tests.unit.client_double import Recorder, harness, wait_until

RATE_LIMITED = ErrorCode.ERROR_CODE_RATE_LIMITED
UNAVAILABLE = ErrorCode.ERROR_CODE_UNAVAILABLE


def _delays(recorder: Recorder) -> list[float]:
    """The reconnect delays the client logged, in order."""
    found = (re.search(r"reconnecting to \S+ in ([0-9.]+) s", m) for _, _, m in recorder.logs)
    return [float(match.group(1)) for match in found if match]


def test_reconnect_delays() -> None:
    rng = random.Random(7)
    drained = [
        reconnect_delay(0, rng, UNAVAILABLE, framing.CLOSE_SERVICE_RESTART) for _ in range(500)
    ]
    assert all(0 <= d <= backoff.DRAIN_SPREAD for d in drained)
    assert min(drained) < 0.1 and max(drained) > backoff.DRAIN_SPREAD - 0.1  # spread out
    # Other drops (a crash, 1001, 1013, a broken socket) come back quickly.
    for close_code in (None, 1001, 1006, framing.CLOSE_TRY_AGAIN_LATER):
        assert reconnect_delay(0, rng, UNAVAILABLE, close_code) <= backoff.INITIAL_DELAY
    # After the drain's first attempt failed, the usual backoff goes on.
    assert reconnect_delay(1, rng, UNAVAILABLE, framing.CLOSE_SERVICE_RESTART) <= 0.4
    # RATE_LIMITED holds every attempt back by seconds, however it came.
    for attempt in range(8):
        for close_code in (None, framing.CLOSE_RATE_LIMITED):
            delay = reconnect_delay(attempt, rng, RATE_LIMITED, close_code)
            assert backoff.RATE_LIMITED_DELAY <= delay <= 2 * backoff.RATE_LIMITED_DELAY
    assert backoff.RATE_LIMITED_DELAY >= 3


def test_first_replica_is_a_random_other_one() -> None:
    rng = random.Random(3)
    picks = [first_replica(1, 4, rng) for _ in range(300)]
    assert set(picks) == {0, 2, 3}
    assert first_replica(0, 1, rng) == 0  # one replica: it is the only choice


async def test_drained_clients_spread_over_replicas_and_time(tmp_path: Path) -> None:
    async with harness(tmp_path, gateways=4) as h:
        clients = [
            h.client(h.builder(f"user-{index}"), rng=random.Random(index))[0] for index in range(12)
        ]
        for client in clients:
            await client.start()
        assert {client.gateway_id for client in clients} == {"gw-1"}
        drained_at = time.monotonic()
        await h.gateways[0].drop_all(code=framing.CLOSE_SERVICE_RESTART)
        await wait_until(lambda: all(c.is_started and c.gateway_id != "gw-1" for c in clients))
        took = time.monotonic() - drained_at
        assert took < backoff.DRAIN_SPREAD + 1, f"the last client took {took:.1f} s"
        arrivals: dict[str, list[float]] = {}
        for gateway in h.gateways[1:]:
            arrivals[gateway.gateway_id] = sorted(s.hello_at for s in gateway.sessions)
        assert sum(map(len, arrivals.values())) == len(clients)  # one attempt each
        assert len([times for times in arrivals.values() if times]) >= 2
        # No replica sees the drained replica's clients arrive together.
        for times in arrivals.values():
            for start in times:
                together = [t for t in times if start <= t < start + 0.2]
                assert len(together) < len(clients) / 2, arrivals


async def test_error_frame_before_a_drain_close_still_reconnects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backoff, "DRAIN_SPREAD", 0.2)  # the spread is not under test here
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        await client.start()
        first = client.session_id
        denied = ProtocolError(ErrorCode.ERROR_CODE_PERMISSION_DENIED, "not now")
        await h.gateways[0].send_to_all(framing.error_envelope(denied))
        await wait_until(lambda: recorder.logged("not now"))
        await h.gateways[0].drop_all(code=framing.CLOSE_SERVICE_RESTART)
        await wait_until(lambda: client.is_started and client.session_id != first)
        assert recorder.failed == [] and recorder.started == 1
        assert recorder.logged("reconnected") and recorder.logged("close code 1012")


async def test_request_refused_with_rate_limited_fails_with_it(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        await client.start()
        h.gateways[0].presence_error = ProtocolError(RATE_LIMITED, "slow down")
        with pytest.raises(ParleyError) as caught:
            await client.presence(["bob"])
        assert (caught.value.code, caught.value.type) == ("RATE_LIMITED", ErrorType.OTHER)
        assert caught.value.message == "slow down"
        assert client.is_started and not recorder.failed


async def test_rate_limited_close_reconnects_after_a_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    floor = 0.4  # the pause, shortened so the test is quick (its default is seconds)
    monkeypatch.setattr(backoff, "RATE_LIMITED_DELAY", floor)
    async with harness(tmp_path) as h:
        gateway = h.gateways[0]
        client, recorder = h.client()
        await client.start()
        # A limit hit on a live session, then the first reconnect refused the same way.
        await gateway.send_to_all(
            framing.error_envelope(ProtocolError(RATE_LIMITED, "too many frames"))
        )
        gateway.hello_error = ProtocolError(RATE_LIMITED, "too many connects")
        gateway.hello_close_code = framing.CLOSE_RATE_LIMITED
        await gateway.drop_all(code=framing.CLOSE_RATE_LIMITED)
        dropped_at = time.monotonic()
        await wait_until(lambda: len(gateway.sessions) == 2 and gateway.sessions[1].hello_at > 0)
        assert gateway.sessions[1].hello_at - dropped_at >= floor
        gateway.hello_error = None
        gateway.hello_close_code = None
        await client.wait_connected(5)
        assert len(gateway.sessions) == 3
        assert gateway.sessions[2].hello_at - gateway.sessions[1].hello_at >= floor
        assert recorder.logged("RATE_LIMITED")
        assert [d >= floor for d in _delays(recorder)] == [True, True]
        assert not recorder.failed and client.is_started


async def test_rate_limited_close_code_alone_means_rate_limited(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        client, recorder = h.client()
        await client.start()
        await h.gateways[0].drop_all(code=framing.CLOSE_RATE_LIMITED)
        await wait_until(lambda: not client.is_started)
        assert framing.error_for_close(framing.CLOSE_RATE_LIMITED) == RATE_LIMITED
        await wait_until(lambda: bool(_delays(recorder)))
        assert recorder.logged("(close code 4429)") and recorder.logged("RATE_LIMITED")
        [delay] = _delays(recorder)
        assert delay >= backoff.RATE_LIMITED_DELAY
        assert len(h.gateways[0].sessions) == 1 and not recorder.failed  # waiting, not failed
