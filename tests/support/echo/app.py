"""Composition root of the echo service: its settings, its handler, the device events."""

from __future__ import annotations

import dataclasses

from parley.v1 import echo_pb2
from parley_service.db import Migrations
from parley_service.devices import DeviceEvents
from parley_service.runtime import Runtime
from parley_service.settings import ServiceSettings
from tests.support.echo.handlers import EchoHandlers


@dataclasses.dataclass(frozen=True)
class EchoSettings(ServiceSettings):
    service_name: str = "echo"


SETTINGS = EchoSettings
MIGRATIONS: Migrations | None = None  # keeps no tables


def handlers_of(runtime: Runtime) -> EchoHandlers:
    return runtime.component("echo", EchoHandlers)


async def setup(runtime: Runtime) -> None:
    handlers = EchoHandlers(DeviceEvents(runtime.nc), runtime.settings.instance_id)
    runtime.components["echo"] = handlers
    runtime.bus.client_endpoint(echo_pb2.EchoRequest, handlers.echo)
