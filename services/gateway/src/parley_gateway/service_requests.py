"""A request from the gateway's HTTP side to a service, with the gateway's own wording for a
service that is not there or too slow.

Only an unreachable service's UNAVAILABLE and a reply that never came are reworded (as
`forward.py` does for routed client bodies): an UNAVAILABLE or TIMEOUT a service answered
with itself (busy, its database down) says more, and passes as it is, like every other
error the service answers with.
"""

from __future__ import annotations

from typing import TypeVar

import nats.errors
from google.protobuf.message import Message

from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.bus import Bus, Unreachable

Resp = TypeVar("Resp", bound=Message)


async def ask(
    bus: Bus,
    service: str,
    subject: str,
    message: Message,
    response_type: type[Resp],
    timeout: float,
) -> Resp:
    try:
        return await bus.request(subject, message, response_type, timeout)
    except Unreachable as err:
        raise ParleyError(
            ErrorCode.ERROR_CODE_UNAVAILABLE,
            f"the {service} service is not available; retry shortly",
        ) from err
    except ParleyError as err:
        # The bus's own timeout (no reply came), not a TIMEOUT the service answered with.
        if isinstance(err.__cause__, nats.errors.TimeoutError):
            raise ParleyError(
                ErrorCode.ERROR_CODE_TIMEOUT,
                f"the {service} service did not answer within {timeout:g} s; retry",
            ) from err
        raise
