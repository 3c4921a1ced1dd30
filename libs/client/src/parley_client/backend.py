"""The app-backend helper: an application's own servers managing conferences over the
gateway's signed REST API (see the gateway's /v1/openapi.json).

    async with BackendClient("https://parley.example.com", key, secret) as backend:
        call_id = await backend.callout_user("standup", "alice")
        for participant in await backend.conference("standup"):
            ...
        await backend.mute("standup", call_id)

Unlike `ParleyClient`, which acts for one user on a device, this holds the application
secret and signs each request with `parley_protocol.signatures.sign_rest_request`: it
belongs on a server, never in an app shipped to users. Errors are the SDK's `ParleyError`
with the problem's code and reason.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from parley_client.errors import ErrorType, ParleyError
from parley_protocol import http as protocol_http
from parley_protocol import validation
from parley_protocol.errors import ErrorCode
from parley_protocol.errors import ParleyError as ProtocolError
from parley_protocol.signatures import REST_SHA256_HEADER, sign_rest_request

JSON = "application/json"


@dataclass(frozen=True)
class ConferenceParticipant:
    """One participant of a room, as GET /v1/conferences/id/{conferenceId} lists it."""

    call_id: str
    user_id: str  # empty for a phone
    cli: str  # a phone participant's number; empty for a user
    duration: int  # whole seconds since it joined
    muted: bool
    onhold: bool


def conference_path(conference_id: str) -> str:
    """The percent-encoded path of a room: every character but letters, digits and `-_.~`
    is encoded (`/` too), and a room named `.` or `..` is encoded whole so no client or
    proxy on the way takes it for a dot segment."""
    segment = urllib.parse.quote(conference_id, safe="")
    if segment in (".", ".."):
        segment = segment.replace(".", "%2E")
    return f"/v1/conferences/id/{segment}"


def _sdk_error(err: ProtocolError) -> ParleyError:
    return ParleyError.from_protocol(err)


class BackendClient:
    def __init__(
        self,
        base_url: str,
        application_key: str,
        application_secret: str,
        *,
        timeout: float = 15.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """`base_url`: the gateway, e.g. https://parley.example.com (a path prefix is kept
        and signed). `session`: an aiohttp session to share; one of its own otherwise."""
        try:
            validation.validate_application_key(application_key)
        except ProtocolError as err:
            raise _sdk_error(err) from err
        self._base = URL(base_url.rstrip("/"))
        self._key = application_key
        self._secret = application_secret
        self._timeout = timeout
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> BackendClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    # conferences ------------------------------------------------------------------------

    async def conference(self, conference_id: str) -> list[ConferenceParticipant]:
        """The room's participants (a room with nobody in it: NOT_FOUND)."""
        reply = await self._request("GET", self._room(conference_id))
        participants = reply.get("participants") if isinstance(reply, dict) else None
        if not isinstance(participants, list):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INTERNAL, "the gateway answered without a participant list"
            )
        return [
            ConferenceParticipant(
                call_id=str(p.get("id", "")),
                user_id=str(p.get("userId", "")),
                cli=str(p.get("cli", "")),
                duration=int(p.get("duration", 0)),
                muted=bool(p.get("muted", False)),
                onhold=bool(p.get("onhold", False)),
            )
            for p in participants
            if isinstance(p, dict)
        ]

    async def mute(self, conference_id: str, call_id: str) -> None:
        await self._command(conference_id, call_id, "mute")

    async def unmute(self, conference_id: str, call_id: str) -> None:
        await self._command(conference_id, call_id, "unmute")

    async def kick(self, conference_id: str, call_id: str) -> None:
        """Remove one participant (its call ends with REMOVED)."""
        await self._request("DELETE", self._participant(conference_id, call_id))

    async def kick_all(self, conference_id: str) -> None:
        """Remove every participant of the room."""
        await self._request("DELETE", self._room(conference_id))

    # callouts ---------------------------------------------------------------------------

    async def callout_user(
        self, conference_id: str, user_id: str, headers: dict[str, str] | None = None
    ) -> str:
        """Ring a user's devices with a call into the room; the new call's id."""
        return await self._callout(conference_id, "username", user_id, headers)

    async def callout_number(
        self, conference_id: str, number: str, headers: dict[str, str] | None = None
    ) -> str:
        """Dial a phone number (E.164) into the room; the new call's id."""
        return await self._callout(conference_id, "number", number, headers)

    async def callout_sip(
        self, conference_id: str, sip_address: str, headers: dict[str, str] | None = None
    ) -> str:
        """Call a SIP address ("user@host[:port]") into the room; the new call's id."""
        return await self._callout(conference_id, "sip", sip_address, headers)

    # the wire ---------------------------------------------------------------------------

    def _room(self, conference_id: str) -> str:
        try:
            validation.validate_conference_id(conference_id, "conference_id")
        except ProtocolError as err:
            raise _sdk_error(err) from err
        return conference_path(conference_id)

    def _participant(self, conference_id: str, call_id: str) -> str:
        return f"{self._room(conference_id)}/{urllib.parse.quote(call_id, safe='')}"

    async def _command(self, conference_id: str, call_id: str, command: str) -> None:
        path = self._participant(conference_id, call_id)
        await self._request("PATCH", path, {"command": command})

    async def _callout(
        self, conference_id: str, kind: str, endpoint: str, headers: dict[str, str] | None
    ) -> str:
        callout: dict[str, Any] = {
            "conferenceId": conference_id,
            "destination": {"type": kind, "endpoint": endpoint},
        }
        if headers:
            callout["headers"] = dict(headers)
        reply = await self._request(
            "POST", "/v1/callouts", {"method": "conferenceCallout", "conferenceCallout": callout}
        )
        call_id = reply.get("callId") if isinstance(reply, dict) else None
        if not isinstance(call_id, str) or not call_id:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INTERNAL, "the gateway answered the callout without a callId"
            )
        return call_id

    async def _request(self, method: str, path: str, payload: Any = None) -> Any:
        """Sign and send one request; its JSON answer (None for 204), or the ParleyError its
        problem describes."""
        full_path = self._base.raw_path.rstrip("/") + path
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        headers = sign_rest_request(
            self._key,
            self._secret,
            method,
            full_path,
            body,
            JSON if body else "",
            hash_header=REST_SHA256_HEADER,
        )
        # encoded=True: the path goes out exactly as signed, not re-encoded or normalised.
        url = self._base.with_path(full_path, encoded=True)
        if self._session is None:
            if not self._own_session:
                raise ParleyError(ErrorCode.ERROR_CODE_WRONG_STATE, "the backend client is closed")
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.request(
                method,
                url,
                data=body or None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                status = response.status
                text = await response.text()
        except TimeoutError as exc:
            raise ParleyError(
                ErrorCode.ERROR_CODE_TIMEOUT,
                f"{method} {url} did not answer within {self._timeout:g} s",
                ErrorType.NETWORK,
            ) from exc
        except aiohttp.ClientError as exc:
            raise ParleyError.network(f"{method} {url} failed: {exc}") from exc
        try:
            answer: Any = json.loads(text) if text else None
        except ValueError:
            answer = text
        if not 200 <= status < 300:
            raise _sdk_error(protocol_http.error_from_problem(status, answer))
        return answer
