"""Errors over HTTP: `application/problem+json` bodies (RFC 9457) carrying a Parley code."""

from __future__ import annotations

from typing import Any

from parley_protocol.errors import ErrorCode, ParleyError, code_name

PROBLEM_CONTENT_TYPE = "application/problem+json"

_STATUS: dict[int, int] = {
    ErrorCode.ERROR_CODE_UNAUTHENTICATED: 401,
    ErrorCode.ERROR_CODE_TOKEN_EXPIRED: 401,
    ErrorCode.ERROR_CODE_INVALID_SIGNATURE: 401,
    ErrorCode.ERROR_CODE_STALE_TIMESTAMP: 401,
    ErrorCode.ERROR_CODE_PERMISSION_DENIED: 403,
    ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT: 403,
    ErrorCode.ERROR_CODE_UNKNOWN_APPLICATION: 404,
    ErrorCode.ERROR_CODE_NOT_FOUND: 404,
    ErrorCode.ERROR_CODE_SEQUENCE_REUSED: 409,
    ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE: 413,
    ErrorCode.ERROR_CODE_RATE_LIMITED: 429,
    ErrorCode.ERROR_CODE_INTERNAL: 500,
    ErrorCode.ERROR_CODE_UNAVAILABLE: 503,
    ErrorCode.ERROR_CODE_TIMEOUT: 504,
}


def status_for(code: int) -> int:
    """HTTP status for an error code; input errors not listed are 400."""
    return _STATUS.get(code, 400)


def problem_body(err: ParleyError) -> dict[str, Any]:
    name = code_name(err.code)
    body: dict[str, Any] = {
        "type": f"urn:parley:error:{name.lower()}",
        "title": name.replace("_", " ").capitalize(),
        "status": status_for(err.code),
        "detail": err.reason,
        "code": name,
    }
    if err.field:
        body["field"] = err.field
    return body


def error_from_problem(status: int, body: Any) -> ParleyError:
    """The ParleyError a problem response describes (or a generic one for a non-problem body)."""
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        try:
            code = ErrorCode.Value("ERROR_CODE_" + body["code"])
        except ValueError:
            code = ErrorCode.ERROR_CODE_INTERNAL
        return ParleyError(code, str(body.get("detail", "")), str(body.get("field", "")))
    if status in (502, 503):
        code = ErrorCode.ERROR_CODE_UNAVAILABLE
    elif status == 504:
        code = ErrorCode.ERROR_CODE_TIMEOUT
    else:
        code = ErrorCode.ERROR_CODE_INTERNAL
    return ParleyError(code, f"HTTP {status}: {str(body)[:200]}")
