"""Reading an HTTP request's body: at most MAX_BODY_BYTES, and as a JSON object.

Shared by the client endpoints (registration, tokens) and the app-backend REST API, which
needs the raw bytes first (their hash is signed) and parses them after.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from parley_protocol.errors import ErrorCode, ParleyError

MAX_BODY_BYTES = 16 * 1024


def invalid(reason: str, field: str = "") -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, reason, field)


async def read_body(request: web.Request) -> bytes:
    """The whole body, or PAYLOAD_TOO_LARGE beyond MAX_BODY_BYTES."""
    too_large = ParleyError(
        ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE,
        f"request body is over the limit of {MAX_BODY_BYTES} bytes",
    )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise too_large from exc


def json_object(raw: bytes) -> dict[str, Any]:
    """`raw` as a JSON object, or INVALID_ARGUMENT saying what it is instead."""
    if not raw.strip():
        raise invalid("request body is empty; send a JSON object")
    try:
        data = json.loads(raw)
    except ValueError as exc:  # also UnicodeDecodeError
        raise invalid(f"request body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise invalid("request body is nested too deeply") from exc
    if not isinstance(data, dict):
        raise invalid(f"request body must be a JSON object, not {type(data).__name__}")
    return data
