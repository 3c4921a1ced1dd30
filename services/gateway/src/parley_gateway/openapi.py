"""GET /v1/openapi.json: the OpenAPI 3.1 document of the gateway's public HTTP routes.

The document is a file of this package (`openapi.json`), written by hand beside the code it
describes; a unit test checks it is a valid OpenAPI document and that its paths and the
routes the gateway serves are the same set, so neither can drift from the other.
"""

from __future__ import annotations

import functools
from importlib import resources

from aiohttp import web

OPENAPI_PATH = "/v1/openapi.json"


@functools.cache
def document_text() -> str:
    """The document as shipped (read once)."""
    return resources.files("parley_gateway").joinpath("openapi.json").read_text("utf-8")


async def handle_openapi(request: web.Request) -> web.Response:
    return web.Response(
        text=document_text(),
        content_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )
