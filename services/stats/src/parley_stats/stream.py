"""The stream STATS: uploaded call reports, one subject per application, file storage,
kept by age (limits retention), deduplicated per application, call and device.

An upload is answered only once the stream has its record, so an accepted report survives
a stats replica's crash and a database outage; the writers (`ingest.py`) share one durable
consumer and acknowledge a record once it is committed. Records stay on the stream after
that until they are `stats_stream_max_age_seconds` old, so the table can be rebuilt.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from parley.v1 import stats_pb2
from parley_protocol import subjects
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.assets import Consumer, JetStreamAssets, Stream, asset_missing
from parley_stats.records import message_id

# How long a batch a writer holds stays its own before JetStream gives it to another
# writer (a batch is one transaction: far shorter).
ACK_WAIT_SECONDS = 30.0
# Records handed out and not acknowledged yet, over all writers.
MAX_ACK_PENDING = 20_000
# How long an upload waits for the stream's acknowledgement.
PUBLISH_TIMEOUT_SECONDS = 3.0
MSG_ID_HEADER = "Nats-Msg-Id"


def stream(replicas: int, max_age_seconds: float, duplicate_window_seconds: float) -> Stream:
    return Stream(
        StreamConfig(
            name=subjects.STATS_STREAM,
            subjects=[subjects.STATS_REPORTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=replicas,
            max_age=max_age_seconds,
            duplicate_window=duplicate_window_seconds,
        )
    )


def consumer() -> Consumer:
    return Consumer(
        subjects.STATS_STREAM,
        ConsumerConfig(
            durable_name=subjects.STATS_CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ACK_WAIT_SECONDS,
            max_ack_pending=MAX_ACK_PENDING,
        ),
    )


class ReportStream:
    def __init__(self, nc: NATS, assets: JetStreamAssets) -> None:
        self._js = nc.jetstream()
        self._assets = assets

    async def publish(self, record: stats_pb2.CallReportRecord) -> bool:
        """Put `record` on the stream; True when the stream took it as new, False when it
        had this application's, call's and device's record within its duplicate window.
        UNAVAILABLE (retry) when the stream did not acknowledge it."""
        msg_id = message_id(
            record.application_key, record.report.call_id, record.device_instance_id
        )
        try:
            ack = await self._js.publish(
                subjects.stats_reports(record.application_key),
                record.SerializeToString(),
                timeout=PUBLISH_TIMEOUT_SECONDS,
                stream=subjects.STATS_STREAM,
                headers={MSG_ID_HEADER: msg_id},
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if asset_missing(exc):
                self._assets.lost(f"stream {subjects.STATS_STREAM}")
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNAVAILABLE,
                f"the call report cannot be taken now ({type(exc).__name__}); retry",
            ) from exc
        return not ack.duplicate
