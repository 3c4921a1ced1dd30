"""The typed error that crosses the bus and the WebSocket: a code from one enum and a reason."""

from __future__ import annotations

from parley.v1 import common_pb2

ErrorCode = common_pb2.ErrorCode

# NATS header set on a bus reply whose payload is an encoded parley.v1.Error.
ERROR_HEADER = "Parley-Error"


def code_name(code: int) -> str:
    """`ERROR_CODE_TOKEN_EXPIRED` -> `TOKEN_EXPIRED`."""
    try:
        return common_pb2.ErrorCode.Name(code).removeprefix("ERROR_CODE_")
    except ValueError:
        return f"UNKNOWN_{code}"


class ParleyError(Exception):
    """An error with a code from `ErrorCode`, a human reason, and optionally the field at fault."""

    def __init__(self, code: int, reason: str, field: str = "", sip_status: int = 0) -> None:
        super().__init__(f"{code_name(code)}: {reason}")
        self.code = code
        self.reason = reason
        self.field = field
        # With ERROR_CODE_SIP: the SIP status code the far end answered.
        self.sip_status = sip_status

    @property
    def code_name(self) -> str:
        return code_name(self.code)

    def to_proto(self) -> common_pb2.Error:
        return common_pb2.Error(
            code=self.code,  # type: ignore[arg-type]
            reason=self.reason,
            field=self.field,
            sip_status=self.sip_status,
        )

    @classmethod
    def from_proto(cls, err: common_pb2.Error) -> ParleyError:
        return cls(err.code, err.reason, err.field, err.sip_status)

    def __repr__(self) -> str:
        return f"ParleyError({self.code_name}, {self.reason!r}, field={self.field!r})"
