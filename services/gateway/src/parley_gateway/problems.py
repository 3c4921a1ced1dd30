"""Problem responses (`application/problem+json` with a Parley code) for what an HTTP
handler raised: a ParleyError, one of aiohttp's HTTP errors (no route, wrong method, too
large), or anything else (500 INTERNAL, logged)."""

from __future__ import annotations

from aiohttp import web

from parley_gateway.metrics import ERRORS
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.http import PROBLEM_CONTENT_TYPE, problem_body
from parley_service.logs import get_logger

log = get_logger("parley.gateway.http")


def problem_response(err: ParleyError, status: int | None = None) -> web.Response:
    """The problem response for `err`, with its code's status unless `status` is given."""
    ERRORS.labels(err.code_name).inc()
    body = problem_body(err)
    if status is not None:
        body["status"] = status
    return web.json_response(body, status=body["status"], content_type=PROBLEM_CONTENT_TYPE)


def problem_for(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The problem response for what a handler raised (an HTTP status below 400, e.g. a
    redirect, is raised again: it is not a problem)."""
    if isinstance(exc, ParleyError):
        return problem_response(exc)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        response = problem_response(http_error(request, exc), exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    log.exception("http_handler_failed", path=request.path[:200])  # called while handling it
    return problem_response(ParleyError(ErrorCode.ERROR_CODE_INTERNAL, "internal error"))


# Codes for the statuses aiohttp itself answers with; other 4xx are INVALID_ARGUMENT.
_HTTP_CODES: dict[int, int] = {
    413: ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
    429: ErrorCode.ERROR_CODE_RATE_LIMITED,
    503: ErrorCode.ERROR_CODE_UNAVAILABLE,
    504: ErrorCode.ERROR_CODE_TIMEOUT,
}


def http_error(request: web.Request, exc: web.HTTPException) -> ParleyError:
    """The Parley error for an HTTP error aiohttp raised (no route, wrong method, ...)."""
    path = request.path[:200]
    if exc.status == 404:
        return ParleyError(ErrorCode.ERROR_CODE_NOT_FOUND, f"no endpoint at {path}")
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"method not allowed: {request.method[:20]} {path} takes {allowed or 'no method'}",
        )
    server_side = exc.status >= 500
    default = (
        ErrorCode.ERROR_CODE_INTERNAL if server_side else ErrorCode.ERROR_CODE_INVALID_ARGUMENT
    )
    return ParleyError(_HTTP_CODES.get(exc.status, default), exc.reason or f"HTTP {exc.status}")
