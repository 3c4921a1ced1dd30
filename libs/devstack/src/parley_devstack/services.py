"""The services that ``make run`` supervises: the one place to add a service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServiceDef:
    """A service run as ``python -m <module>``.

    ``health_port`` is its internal port for /healthz, /readyz and /metrics (env
    PARLEY_HEALTH_PORT). A service with a public port gets it in env ``public_port_env``;
    the same variable in our own environment overrides ``public_port``. A port of 0 means
    any free port. ``env`` adds variables of this service alone (e.g. a second gateway's id).
    """

    name: str
    module: str
    health_port: int
    public_port: int | None = None
    public_port_env: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    restart: bool = True
    # Only services that keep tables get the database URL, and only auth the master key:
    # the public gateway holds neither.
    database: bool = False
    master_key: bool = False


SERVICES: tuple[ServiceDef, ...] = (
    ServiceDef(name="auth", module="parley_auth", health_port=9101, database=True, master_key=True),
    ServiceDef(
        name="gateway",
        module="parley_gateway",
        health_port=9102,
        public_port=8080,
        public_port_env="PARLEY_GATEWAY_PORT",
    ),
)

GATEWAY = "gateway"
"""The service whose public port is the client endpoint."""

ADMIN_MODULE = "parley_auth.admin"
"""``python -m ADMIN_MODULE migrate | create-account | create-app`` (see stack.py)."""
