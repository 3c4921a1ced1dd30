"""The internal HTTP port of every service: /healthz, /readyz and /metrics.

/healthz answers 200 while the process runs. /readyz answers 200 when every readiness
check passes, 503 while starting, draining or when a dependency is down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

SERVICE_INFO = Gauge(
    "parley_service_info",
    "1, labelled with the service this process runs: dashboards join the process_* metrics "
    "on it (on job and instance) to show them by service, whatever the scrape jobs are named.",
    ["service"],
)

ReadinessCheck = Callable[[], Awaitable[str | None]]  # None: ready; else the reason not


class HealthServer:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.checks: list[ReadinessCheck] = []
        self.draining = False
        self.started = False
        self._runner: web.AppRunner | None = None

    def add_check(self, check: ReadinessCheck) -> None:
        self.checks.append(check)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.json_response({"status": "draining"}, status=503)
        if not self.started:
            return web.json_response({"status": "starting"}, status=503)
        failures = [reason for check in self.checks if (reason := await check()) is not None]
        if failures:
            return web.json_response({"status": "not ready", "reasons": failures}, status=503)
        return web.json_response({"status": "ready"})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
