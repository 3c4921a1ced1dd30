"""The gateway's client HTTP endpoints: POST /v1/register and POST /v1/token (proto3 JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

import aiohttp
from google.protobuf import json_format
from google.protobuf.message import Message

from parley_client.config import Endpoint
from parley_client.errors import ErrorType, ParleyError
from parley_client.logs import ClientLog
from parley_protocol import http as protocol_http
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import auth

REGISTER_PATH = "/v1/register"
TOKEN_PATH = "/v1/token"

M = TypeVar("M", bound=Message)

# Statuses after which another replica may well succeed.
_RETRY_ELSEWHERE = frozenset({502, 503})


class AuthApi:
    """Registration and token calls, tried on each gateway host in the order given."""

    def __init__(self, session: aiohttp.ClientSession, timeout: float, log: ClientLog) -> None:
        self._session = session
        self._timeout = timeout
        self._log = log

    async def register(
        self, endpoints: Sequence[Endpoint], request: auth.RegisterRequest
    ) -> auth.RegisterResponse:
        # Not retried after a timeout: the server may have taken the sequence already.
        return await self._post(
            endpoints, REGISTER_PATH, request, auth.RegisterResponse, idempotent=False
        )

    async def token(
        self, endpoints: Sequence[Endpoint], request: auth.TokenRequest
    ) -> auth.TokenResponse:
        return await self._post(endpoints, TOKEN_PATH, request, auth.TokenResponse, idempotent=True)

    async def _post(
        self,
        endpoints: Sequence[Endpoint],
        path: str,
        request: Message,
        response_type: type[M],
        idempotent: bool,
    ) -> M:
        body = json_format.MessageToDict(request, preserving_proto_field_name=True)
        last: ParleyError | None = None
        for endpoint in endpoints:
            try:
                return await self._post_once(endpoint, path, body, response_type, idempotent)
            except _TryElsewhere as exc:
                last = exc.error
                self._log.warning("http", f"POST {endpoint.url(path)} failed: {exc.error}")
        assert last is not None, "no endpoints given"
        raise last

    async def _post_once(
        self,
        endpoint: Endpoint,
        path: str,
        body: dict[str, Any],
        response_type: type[M],
        idempotent: bool,
    ) -> M:
        url = endpoint.url(path)
        try:
            async with self._session.post(
                url,
                json=body,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                status = response.status
                text = await response.text()
        except aiohttp.ClientConnectorError as exc:
            raise _TryElsewhere(ParleyError.network(f"cannot reach {url}: {exc}")) from exc
        except TimeoutError as exc:
            error = ParleyError(
                ErrorCode.ERROR_CODE_TIMEOUT,
                f"{url} did not answer within {self._timeout:g} s",
                ErrorType.NETWORK,
            )
            if idempotent:
                raise _TryElsewhere(error) from exc
            raise error from exc
        except aiohttp.ClientError as exc:
            error = ParleyError.network(f"POST {url} failed: {exc}")
            if idempotent:
                raise _TryElsewhere(error) from exc
            raise error from exc

        try:
            payload: Any = json.loads(text) if text else None
        except ValueError:
            payload = text
        if status != 200:
            error = ParleyError.from_protocol(protocol_http.error_from_problem(status, payload))
            if status in _RETRY_ELSEWHERE or (idempotent and status == 504):
                raise _TryElsewhere(error)
            raise error
        if not isinstance(payload, dict):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INTERNAL,
                f"{url} answered 200 with a body that is not a JSON object",
            )
        try:
            return json_format.ParseDict(payload, response_type(), ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INTERNAL,
                f"{url} answered with a malformed {response_type.DESCRIPTOR.name}: {exc}",
            ) from exc


class _TryElsewhere(Exception):
    def __init__(self, error: ParleyError) -> None:
        super().__init__(str(error))
        self.error = error
