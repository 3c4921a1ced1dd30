"""A small OTLP/HTTP trace collector for tests: `POST /v1/traces` with a protobuf
`ExportTraceServiceRequest` (gzip or not), as the services' exporter sends it, kept as
`CollectedSpan`s with the `service.name` of their resource.

A body that is not one is refused as a collector would (415, 400) and counted in
`refused`, so a test sees a malformed export instead of missing spans."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from parley_devstack.ports import LOOPBACK

PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class CollectedSpan:
    service: str  # the resource's service.name
    name: str
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str  # "" for a root span


class OtlpCollector:
    def __init__(self) -> None:
        self.spans: list[CollectedSpan] = []
        self.refused: list[str] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        """What PARLEY_OTLP_ENDPOINT is set to (the exporter adds /v1/traces)."""
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> OtlpCollector:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        assert sockets, "the collector is not listening"
        self.port = sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def of_trace(self, trace_id: str) -> list[CollectedSpan]:
        return [span for span in self.spans if span.trace_id == trace_id]

    async def _traces(self, request: web.Request) -> web.Response:
        if request.content_type != PROTOBUF:
            return self._refuse(415, f"content type {request.content_type!r}")
        body = await request.read()
        export = ExportTraceServiceRequest()
        try:
            if request.headers.get("Content-Encoding", "") == "gzip":
                body = gzip.decompress(body)
            export.ParseFromString(body)
        except (DecodeError, OSError, EOFError):
            return self._refuse(400, "not an ExportTraceServiceRequest")
        self.spans.extend(_spans_of(export))
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type=PROTOBUF
        )

    def _refuse(self, status: int, why: str) -> web.Response:
        self.refused.append(why)
        return web.Response(status=status, text=why)


def _spans_of(export: ExportTraceServiceRequest) -> Iterable[CollectedSpan]:
    for resource_spans in export.resource_spans:
        service = next(
            (
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            ),
            "",
        )
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield CollectedSpan(
                    service=service,
                    name=span.name,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                )
