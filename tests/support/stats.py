"""Stats test helpers shared by the integration tests: the stats service in process, call
reports, and uploading them as a gateway forwards them (a ClientRequest over NATS)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from nats.aio.client import Client as NATS

from parley.v1 import calls_pb2, client_pb2, routing_pb2, stats_pb2
from parley_protocol import bodies
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import runtime as rt
from parley_service.bus import request
from parley_service.client_requests import Caller
from parley_stats.app import MIGRATIONS
from parley_stats.app import setup as stats_setup
from parley_stats.settings import StatsSettings


@asynccontextmanager
async def stats_service(
    nats_url: str, database_url: str, **values: Any
) -> AsyncIterator[rt.Runtime]:
    settings: dict[str, Any] = {
        "nats_url": nats_url,
        "database_url": database_url,
        "health_port": 0,
        "drain_timeout_seconds": 2.0,
        "stats_batch_window_seconds": 0.05,
    }
    settings.update(values)
    runtime = await rt.start(StatsSettings(**settings), stats_setup, MIGRATIONS)
    try:
        yield runtime
    finally:
        await rt.stop(runtime, drain=False)


def device(app: str, user_id: str = "alice", instance: str | None = None) -> Caller:
    """A device of `user_id` as the gateway verified it."""
    return Caller(
        application_key=app,
        user_id=user_id,
        instance_id=str(uuid.uuid4()) if instance is None else instance,
        session_id=str(uuid.uuid4()),
        gateway_id="gw",
        connection_id=str(uuid.uuid4()),
        capabilities=frozenset(),
    )


def now_ms() -> int:
    return int(time.time() * 1000)


def call_report(call_id: str | None = None, **fields: Any) -> stats_pb2.UploadCallReport:
    """A valid report of an answered app call made a minute ago, with `fields` changed."""
    values: dict[str, Any] = {
        "call_id": call_id or str(uuid.uuid4()),
        "kind": calls_pb2.CALL_KIND_APP,
        "direction": stats_pb2.CALL_DIRECTION_OUTGOING,
        "remote": "bob",
        "end_cause": calls_pb2.CALL_END_CAUSE_HUNG_UP,
        "started_at_ms": now_ms() - 60_000,
        "setup_ms": 800,
        "ringing_ms": 2_000,
        "talk_ms": 50_000,
        "codec": "opus/48000/2",
        "rtt_ms": 30.0,
        "received": stats_pb2.MediaStats(packets=2_500, packets_lost=25, jitter_ms=3.0),
        "mos": 4.2,
    }
    values.update(fields)
    return stats_pb2.UploadCallReport(**values)


async def upload(
    nc: NATS, caller: Caller, report: stats_pb2.UploadCallReport
) -> stats_pb2.CallReportAccepted:
    """Upload `report` as the gateway forwards it; the service's answer, or its error."""
    route = bodies.route_of(stats_pb2.UploadCallReport)
    message = routing_pb2.ClientRequest(
        caller=caller.to_proto(), envelope=bodies.envelope_of(report).SerializeToString()
    )
    reply = await request(nc, route.subject, message, client_pb2.Envelope, 5.0)
    if reply.WhichOneof("body") == "error":
        raise ParleyError.from_proto(reply.error)
    if reply.WhichOneof("body") != "call_report_accepted":
        raise ParleyError(ErrorCode.ERROR_CODE_INTERNAL, f"unexpected reply {reply}")
    return reply.call_report_accepted
