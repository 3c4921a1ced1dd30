"""The simulated client the bench scripts run by the thousand (shared, imported by them): the
load tester's own (`parley_loadtest.clients.simulated_client`), so benches and
`parley-loadtest` drive one client the same way: the reference client in signaling-only
mode, signed in with the stack's sandbox app.

bench/connect.py imports `signaling_client` from here unchanged; it is being reworked
elsewhere and is left as it is (it gets the loadtest factory through this module)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from parley_loadtest.clients import ClientSettings, simulated_client

if TYPE_CHECKING:
    from parley_client import ParleyClient


def settings(config: Mapping[str, Any], hosts: list[str]) -> ClientSettings:
    """The loadtest settings of a bench `config` (app_key, app_secret, state)."""
    return ClientSettings(
        application_key=config["app_key"],
        application_secret=config["app_secret"],
        hosts=tuple(hosts),
        state_dir=config["state"],
    )


def signaling_client(config: Mapping[str, Any], user: str, hosts: list[str]) -> ParleyClient:
    """A client of `user` for the gateways `hosts`, with the app key and secret and the
    persistence folder of `config` (app_key, app_secret, state), without media."""
    return simulated_client(settings(config, hosts), user)
