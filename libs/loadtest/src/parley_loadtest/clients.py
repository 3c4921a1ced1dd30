"""The simulated client: the reference client as a load test (and every bench script) runs
it by the thousand, signalling only unless it is one of the few with media."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parley_client import ParleyClient


@dataclass(frozen=True)
class ClientSettings:
    """What every simulated client of a run shares."""

    application_key: str
    application_secret: str
    hosts: tuple[str, ...]
    state_dir: str  # device credentials, kept between runs
    # ICE host candidates of media clients (None: every address but loopback).
    ice_host_addresses: tuple[str, ...] | None = None


def simulated_client(
    settings: ClientSettings,
    user_id: str,
    *,
    media: bool = False,
    calling: bool = False,
    messaging: bool = False,
) -> ParleyClient:
    """A client of `user_id`, self-signing with the application secret; `media=False` is
    signalling-only mode (no aiortc loaded). The capabilities asked for are switched on."""
    from parley_client import ParleyClient  # in the worker processes only

    builder = (
        ParleyClient.builder()
        .application_key(settings.application_key)
        .application_secret(settings.application_secret)
        .user_id(user_id)
        .environment_hosts(list(settings.hosts))
        .persistence_dir(settings.state_dir)
    )
    if not media:
        builder.media(False)
    elif settings.ice_host_addresses:
        builder.ice_host_addresses(list(settings.ice_host_addresses))
    client = builder.build()
    client.set_support_calling(calling)
    client.set_support_messaging(messaging)
    return client
