"""SubjectMux: many subscriptions with no task or queue each, across a NATS restart; the
light mode's self-test and fallback; drops counted the same in both modes; the event number
and the trace read from headers."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from prometheus_client import REGISTRY

from parley_devstack.nats import EmbeddedNats
from parley_devstack.ports import free_port
from parley_gateway import nats_interest
from parley_gateway.nats_interest import SubjectMux

LIGHT_INTEREST = nats_interest._Interest  # (one test replaces the module's)


async def _next(mux: SubjectMux, timeout: float = 2.0) -> tuple[str, bytes]:
    msg = await asyncio.wait_for(mux.queue.get(), timeout)
    return msg.subject, msg.data


@pytest.mark.parametrize("light", [True, False], ids=["light", "fallback"])
async def test_messages_of_every_subject_land_in_one_queue(
    nats_server: EmbeddedNats, light: bool
) -> None:
    nc, pub = await nats.connect(nats_server.url), await nats.connect(nats_server.url)
    try:
        mux = SubjectMux(nc, light=light)
        assert mux.light is light
        tasks_before = len(asyncio.all_tasks())
        for i in range(50):
            await mux.add(f"mux.{light}.u{i}")
        await mux.add(f"mux.{light}.u0")  # twice: still one subscription
        assert len(mux) == 50
        if light:
            assert len(asyncio.all_tasks()) == tasks_before  # no task per subject
        await pub.publish(f"mux.{light}.u7", b"seven")
        await pub.publish(f"mux.{light}.u42", b"forty-two")
        await pub.publish(f"mux.{light}.nobody", b"lost")
        assert await _next(mux) == (f"mux.{light}.u7", b"seven")
        assert await _next(mux) == (f"mux.{light}.u42", b"forty-two")
        await mux.remove(f"mux.{light}.u7")
        await nc.flush()
        await pub.publish(f"mux.{light}.u7", b"gone")
        await pub.publish(f"mux.{light}.u8", b"eight")
        assert await _next(mux) == (f"mux.{light}.u8", b"eight")
        await mux.clear()
        assert len(mux) == 0
        await nc.flush()
        await pub.publish(f"mux.{light}.u9", b"nine")
        await pub.flush()
        await asyncio.sleep(0.05)
        assert mux.queue.empty()
    finally:
        await nc.close()
        await pub.close()


async def test_interests_are_replayed_after_a_nats_restart(tmp_path: Path) -> None:
    port = free_port()
    server = EmbeddedNats(tmp_path, port=port)
    await server.start()
    nc: NATS = await nats.connect(
        server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1, connect_timeout=1
    )
    try:
        mux = SubjectMux(nc)
        assert mux.light
        await mux.add("restart.a")
        await mux.add("restart.b")
        await server.stop()
        await server.start()
        pub = await nats.connect(server.url)
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while not nc.is_connected:
                assert asyncio.get_running_loop().time() < deadline, "never reconnected"
                await asyncio.sleep(0.05)
            await nc.flush()
            await pub.publish("restart.b", b"after")
            assert await _next(mux, 5) == ("restart.b", b"after")
        finally:
            await pub.close()
        # A drain of the connection drains the interests with it.
        await nc.drain()
        assert len(nc._subs) == 0
    finally:
        if not nc.is_closed:
            await nc.close()
        await server.stop()


def _light_gauge() -> float | None:
    return REGISTRY.get_sample_value("parley_gateway_nats_light_mode")


def _dropped_total() -> float:
    value = REGISTRY.get_sample_value(
        "parley_gateway_device_events_dropped_total", {"reason": "queue_full"}
    )
    return value or 0.0


def _light_failures(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        getattr(r, "fields", {})
        for r in caplog.records
        if r.getMessage() == "nats_light_mode_failed"
    ]


async def test_the_self_test_keeps_light_mode_on_a_real_server(
    nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    nc, pub = await nats.connect(nats_server.url), await nats.connect(nats_server.url)
    try:
        mux = SubjectMux(nc)
        subs_before = dict(nc._subs)
        with caplog.at_level(logging.WARNING, logger="parley.gateway.nats"):
            await mux.start()
        assert mux.light and _light_gauge() == 1.0
        assert not _light_failures(caplog)
        # The probe leaves nothing behind: no subject, no table entry, nothing queued.
        assert len(mux) == 0 and nc._subs == subs_before and mux.queue.empty()
        tasks_before = len(asyncio.all_tasks())
        await mux.add("selftest.ok")
        assert len(asyncio.all_tasks()) == tasks_before  # still no task per subject
        await pub.publish("selftest.ok", b"delivered")
        assert await _next(mux) == ("selftest.ok", b"delivered")
    finally:
        await nc.close()
        await pub.close()


async def _assert_delivery_after_fallback(mux: SubjectMux, nc: NATS, pub: NATS) -> None:
    """Ordinary subscriptions now, for the subjects added before and after the fallback."""
    assert not mux.light and _light_gauge() == 0.0
    assert not any(isinstance(sub, LIGHT_INTEREST) for sub in nc._subs.values())
    await mux.add("fallback.late")
    assert "fallback.early" in mux and "fallback.late" in mux and len(mux) == 2
    await pub.publish("fallback.early", b"early")
    await pub.publish("fallback.late", b"late")
    assert await _next(mux) == ("fallback.early", b"early")
    assert await _next(mux) == ("fallback.late", b"late")
    await pub.flush()
    await asyncio.sleep(0.1)
    assert mux.queue.empty()  # each once: the light interest is gone, not doubled
    await mux.remove("fallback.early")
    await nc.flush()
    await pub.publish("fallback.early", b"gone")
    await pub.flush()
    await asyncio.sleep(0.05)
    assert mux.queue.empty()


async def test_a_probe_that_never_arrives_falls_back_to_ordinary_subscriptions(
    nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    nc, pub = await nats.connect(nats_server.url), await nats.connect(nats_server.url)
    try:
        mux = SubjectMux(nc)
        await mux.add("fallback.early")  # added through the light path before the test
        # As if nats-py no longer handed messages to the light path: neither through the
        # connection's `_process_msg` nor to an interest's `_pending_queue`.
        mux._take_messages_first = lambda: None  # type: ignore[method-assign]
        mux._inlet.put_nowait = lambda msg: None
        with caplog.at_level(logging.WARNING, logger="parley.gateway.nats"):
            await mux.start(timeout=0.3)
        [failure] = _light_failures(caplog)
        assert failure["reason"] == "the probe did not arrive within 0.3 s"
        await _assert_delivery_after_fallback(mux, nc, pub)
    finally:
        await nc.close()
        await pub.close()


async def test_a_light_path_that_raises_falls_back_to_ordinary_subscriptions(
    nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    nc, pub = await nats.connect(nats_server.url), await nats.connect(nats_server.url)
    try:
        mux = SubjectMux(nc)
        await mux.add("fallback.early")

        class ChangedInternals:
            def __init__(self, *args: object) -> None:
                raise AttributeError("'Client' object has no attribute '_subs_by_sid'")

        monkeypatch.setattr(nats_interest, "_Interest", ChangedInternals)
        with caplog.at_level(logging.WARNING, logger="parley.gateway.nats"):
            await mux.start()
        [failure] = _light_failures(caplog)
        assert failure["reason"].startswith("AttributeError: ")
        await _assert_delivery_after_fallback(mux, nc, pub)
    finally:
        await nc.close()
        await pub.close()


@pytest.mark.parametrize("light", [True, False], ids=["light", "fallback"])
async def test_a_full_queue_drops_and_counts_the_same_in_both_modes(
    nats_server: EmbeddedNats, light: bool
) -> None:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(nats_server.url, error_cb=on_error)
    pub = await nats.connect(nats_server.url)
    try:
        mux = SubjectMux(nc, queue_size=2, light=light)
        await mux.start()
        assert mux.light is light
        await mux.add(f"full.{light}")
        before = _dropped_total()
        for i in range(5):
            await pub.publish(f"full.{light}", str(i).encode())
        await pub.flush()
        deadline = asyncio.get_running_loop().time() + 2
        while mux.dropped < 3:
            assert asyncio.get_running_loop().time() < deadline, f"dropped {mux.dropped}"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert mux.dropped == 3 and _dropped_total() - before == 3
        assert [(await _next(mux))[1] for _ in range(2)] == [b"0", b"1"]  # the first kept
        assert errors == []  # not nats-py's slow-consumer path: counted by the mux alone
    finally:
        await nc.close()
        await pub.close()


def test_the_event_number_is_read_from_raw_headers() -> None:
    block = (
        b"NATS/1.0\r\nNats-Stream: EVENTS\r\nNats-Subject: parley.dev.a.b._\r\n"
        b"Nats-Sequence: 12345\r\nNats-Last-Sequence: 12000\r\n\r\n"
    )
    assert nats_interest.sequence_of(block) == 12345
    assert nats_interest.sequence_of(b"NATS/1.0\r\nNats-Sequence:7\r\n\r\n") == 7
    assert nats_interest.sequence_of(b"NATS/1.0\r\nOther: 1\r\n\r\n") == 0
    assert nats_interest.sequence_of(b"NATS/1.0\r\nNats-Sequence: x\r\n\r\n") == 0
    assert nats_interest.sequence_of(None) == 0


def test_a_recorded_trace_is_read_from_raw_headers() -> None:
    traced = f"00-{'a' * 32}-{'b' * 16}-01"
    block = f"NATS/1.0\r\ntraceparent: {traced}\r\nNats-Sequence: 3\r\n\r\n".encode()
    assert nats_interest.traceparent_of(block) == traced
    assert nats_interest.traceparent_of(block.replace(b"-01\r", b"-00\r")) == ""  # unsampled
    assert nats_interest.traceparent_of(b"NATS/1.0\r\ntraceparent: junk\r\n\r\n") == ""
    assert nats_interest.traceparent_of(b"NATS/1.0\r\nNats-Sequence: 3\r\n\r\n") == ""
    assert nats_interest.traceparent_of(None) == ""


@pytest.mark.parametrize("light", [True, False], ids=["light", "fallback"])
async def test_deliveries_carry_the_event_number_in_both_modes(
    nats_server: EmbeddedNats, light: bool
) -> None:
    nc, pub = await nats.connect(nats_server.url), await nats.connect(nats_server.url)
    try:
        mux = SubjectMux(nc, light=light)
        await mux.start()
        await mux.add(f"numbered.{light}")
        traced = f"00-{'a' * 32}-{'b' * 16}-01"
        headers = {"Nats-Sequence": "42", "traceparent": traced}
        await pub.publish(f"numbered.{light}", b"x", headers=headers)
        await pub.publish(f"numbered.{light}", b"y")
        await pub.flush()
        first = await asyncio.wait_for(mux.queue.get(), 2)
        second = await asyncio.wait_for(mux.queue.get(), 2)
        assert isinstance(first, nats_interest.Delivery)
        assert (first.subject, first.data, first.sequence) == (f"numbered.{light}", b"x", 42)
        assert first.traceparent == traced
        assert (second.data, second.sequence, second.traceparent) == (b"y", 0, "")
    finally:
        await nc.close()
        await pub.close()
