"""Parley's embedded default stack: NATS and PostgreSQL from wheels, and a process supervisor.

Used by ``make run`` (``python -m parley_devstack run``) and by the test fixtures.
"""

from parley_devstack.nats import EmbeddedNats
from parley_devstack.ports import free_port, port_is_free
from parley_devstack.postgres import EmbeddedPostgres
from parley_devstack.supervisor import ServiceSpec, ServiceStatus, Supervisor

__all__ = [
    "EmbeddedNats",
    "EmbeddedPostgres",
    "ServiceSpec",
    "ServiceStatus",
    "Supervisor",
    "free_port",
    "port_is_free",
]
