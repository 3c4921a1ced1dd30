"""The SDK's public errors: `ParleyError(code, type, message)` and `ConfigurationError`.

Codes are the names of `parley.v1.ErrorCode` without the `ERROR_CODE_` prefix, so the client
speaks the same vocabulary as every service (`parley_protocol.errors`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from parley_protocol import errors as protocol_errors
from parley_protocol.errors import ErrorCode


class ErrorType(enum.Enum):
    """What kind of failure an error is, as the guide's `ErrorType`."""

    NETWORK = "network"  # unreachable, timed out, or the service is unavailable: retrying may help
    CAPABILITY = "capability"  # the client lacks a capability the operation needs
    SIP = "sip"  # the SIP side of an app-to-sip or PSTN call reported an error
    OTHER = "other"


_NETWORK_CODES = frozenset(
    {
        ErrorCode.ERROR_CODE_UNAVAILABLE,
        ErrorCode.ERROR_CODE_TIMEOUT,
        ErrorCode.ERROR_CODE_HEARTBEAT_TIMEOUT,
    }
)


# ErrorCode.values() makes a new list at each call (a reconnect storm makes thousands of
# errors a second in one process).
_CODE_VALUES = frozenset(ErrorCode.values())


def _code_value(code: str | int) -> int:
    if isinstance(code, int):
        if code not in _CODE_VALUES:
            raise ValueError(f"{code} is not a parley.v1.ErrorCode value")
        return code
    try:
        return int(ErrorCode.Value("ERROR_CODE_" + code.removeprefix("ERROR_CODE_")))
    except ValueError:
        raise ValueError(f"{code!r} is not a parley.v1.ErrorCode name") from None


def default_type(code: int) -> ErrorType:
    """The type an error code has unless the raiser knows better."""
    if code == ErrorCode.ERROR_CODE_CAPABILITY_NOT_ANNOUNCED:
        return ErrorType.CAPABILITY
    if code == ErrorCode.ERROR_CODE_SIP:
        return ErrorType.SIP
    return ErrorType.NETWORK if code in _NETWORK_CODES else ErrorType.OTHER


class ParleyError(Exception):
    """An SDK error: `code` (e.g. "INVALID_SIGNATURE"), `type` (an `ErrorType`) and `message`;
    an error of the SIP side (type SIP) also has the SIP status code in `sip_status`."""

    def __init__(
        self,
        code: str | int,
        message: str,
        type: ErrorType | None = None,
        field: str = "",
        sip_status: int = 0,
    ) -> None:
        value = _code_value(code)
        self.error_code: int = value
        self.code: str = protocol_errors.code_name(value)
        self.type: ErrorType = type if type is not None else default_type(value)
        self.message = message
        self.field = field
        self.sip_status = sip_status
        super().__init__(f"{self.code}: {message}")

    @classmethod
    def from_protocol(
        cls, err: protocol_errors.ParleyError, type: ErrorType | None = None
    ) -> ParleyError:
        """The SDK form of an error a service or the protocol layer raised."""
        return cls(err.code, err.reason, type, err.field, err.sip_status)

    def to_protocol(self) -> protocol_errors.ParleyError:
        return protocol_errors.ParleyError(
            self.error_code, self.message, self.field, self.sip_status
        )

    @classmethod
    def network(cls, message: str) -> ParleyError:
        """The gateway could not be reached or the connection was lost."""
        return cls(ErrorCode.ERROR_CODE_UNAVAILABLE, message, ErrorType.NETWORK)

    def __repr__(self) -> str:
        return f"ParleyError({self.code}, {self.type.name}, {self.message!r})"


def terminated(detail: str = "") -> ParleyError:
    """What an operation on a terminated client fails with; `detail` is appended."""
    return ParleyError(
        ErrorCode.ERROR_CODE_WRONG_STATE, f"the client was terminated{detail}", ErrorType.OTHER
    )


@dataclass(frozen=True)
class ConfigurationProblem:
    """One thing wrong with a client's configuration: the setting at fault and why."""

    field: str
    reason: str
    code: str = "INVALID_ARGUMENT"


class ConfigurationError(ParleyError):
    """The client is not configured well enough to start; `problems` lists every issue found."""

    def __init__(self, problems: Sequence[ConfigurationProblem]) -> None:
        if not problems:
            raise ValueError("a ConfigurationError needs at least one problem")
        self.problems: tuple[ConfigurationProblem, ...] = tuple(problems)
        listed = "; ".join(f"{p.field}: {p.reason}" for p in self.problems)
        super().__init__(
            self.problems[0].code,
            f"invalid client configuration: {listed}",
            ErrorType.OTHER,
            self.problems[0].field,
        )

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(p.field for p in self.problems)
