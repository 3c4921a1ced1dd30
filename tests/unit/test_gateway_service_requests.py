"""How the gateway's HTTP side words a service that is missing or slow, and what it passes
through as the service said it."""

from __future__ import annotations

from typing import Any

import nats.errors
import pytest

from parley.v1 import conference_pb2
from parley_gateway.service_requests import ask
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.bus import Unreachable


class FailingBus:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def request(self, *args: Any) -> Any:
        raise self.error


def bus_timeout() -> ParleyError:
    """What parley_service.bus raises when no reply comes."""
    try:
        raise nats.errors.TimeoutError
    except nats.errors.TimeoutError as exc:
        try:
            raise ParleyError(ErrorCode.ERROR_CODE_TIMEOUT, "x did not answer") from exc
        except ParleyError as err:
            return err


async def refusal(error: BaseException) -> ParleyError:
    with pytest.raises(ParleyError) as info:
        await ask(
            FailingBus(error),  # type: ignore[arg-type]
            "conference",
            "parley.conference.query",
            conference_pb2.ConferenceQuery(),
            conference_pb2.ConferenceInfo,
            5.0,
        )
    return info.value


async def test_an_unreachable_service_is_unavailable_in_the_gateways_words() -> None:
    err = await refusal(Unreachable(ErrorCode.ERROR_CODE_UNAVAILABLE, "no responders"))
    assert err.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    assert err.reason == "the conference service is not available; retry shortly"


async def test_a_reply_that_never_came_is_a_timeout_naming_the_service() -> None:
    err = await refusal(bus_timeout())
    assert err.code == ErrorCode.ERROR_CODE_TIMEOUT
    assert err.reason == "the conference service did not answer within 5 s; retry"


@pytest.mark.parametrize(
    "code",
    [
        ErrorCode.ERROR_CODE_UNAVAILABLE,  # the service's own: busy, its database down
        ErrorCode.ERROR_CODE_TIMEOUT,  # the service's own: e.g. a dial it gave up on
        ErrorCode.ERROR_CODE_NOT_FOUND,
    ],
)
async def test_errors_the_service_answered_with_pass_as_they_are(code: int) -> None:
    err = await refusal(ParleyError(code, "the service's own reason", "callId"))
    assert (err.code, err.reason, err.field) == (code, "the service's own reason", "callId")
