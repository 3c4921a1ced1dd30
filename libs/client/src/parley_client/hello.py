"""What a client says in its Hello: who it is, what it can do, and which SDK it runs."""

from __future__ import annotations

import functools
from importlib import metadata

from parley_client.config import Capabilities, ClientConfig
from parley_protocol.pb import client as pb


@functools.cache
def client_version() -> str:
    """ "parley-client-python/<version>" (the gateway's operators see it per session)."""
    try:
        version = metadata.version("parley-client")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"parley-client-python/{version}"


def hello_message(
    config: ClientConfig,
    capabilities: Capabilities,
    access_token: str,
    *,
    resume_session_id: str = "",
    resume_from_event: int = 0,
    listening: bool = False,
) -> pb.Hello:
    """The Hello for one connection; `resume_session_id` is the session it asks to resume
    (or replaces), after event `resume_from_event`; `listening`, whether the device listens
    from the start (no Listen needed after the Welcome)."""
    return pb.Hello(
        access_token=access_token,
        application_key=config.application_key or "",
        user_id=config.user_id or "",
        capabilities=pb.Capabilities(
            calling=capabilities.calling,
            messaging=capabilities.messaging,
            active_connection=capabilities.active_connection_in_background,
            managed_push=capabilities.managed_push,
        ),
        client_version=client_version(),
        resume_session_id=resume_session_id,
        resume_from_event=resume_from_event,
        listening=listening,
    )
