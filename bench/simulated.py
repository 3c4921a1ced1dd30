"""The simulated client the bench scripts run by the thousand (shared, imported by them):
the reference client in signaling-only mode, signed in with the stack's sandbox app."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parley_client import ParleyClient


def signaling_client(config: Mapping[str, Any], user: str, hosts: list[str]) -> ParleyClient:
    """A client of `user` for the gateways `hosts`, with the app key and secret and the
    persistence folder of `config` (app_key, app_secret, state), without media."""
    from parley_client import ParleyClient  # in the worker processes only

    return (
        ParleyClient.builder()
        .application_key(config["app_key"])
        .application_secret(config["app_secret"])
        .user_id(user)
        .environment_hosts(hosts)
        .persistence_dir(config["state"])
        .media(False)
        .build()
    )
