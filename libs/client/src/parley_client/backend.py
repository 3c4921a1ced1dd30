"""The app-backend helper: an application's own servers managing conferences and reading
call statistics over the gateway's signed REST API (see the gateway's /v1/openapi.json).

    async with BackendClient("https://parley.example.com", key, secret) as backend:
        call_id = await backend.callout_user("standup", "alice")
        for participant in await backend.conference("standup"):
            ...
        await backend.mute("standup", call_id)
        stats = await backend.call_stats(yesterday, now)

Unlike `ParleyClient`, which acts for one user on a device, this holds the application
secret and signs each request with `parley_protocol.signatures.sign_rest_request`: it
belongs on a server, never in an app shipped to users. Errors are the SDK's `ParleyError`
with the problem's code and reason.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from parley_client.errors import ErrorType, ParleyError
from parley_protocol import http as protocol_http
from parley_protocol import validation
from parley_protocol.call_reports import validate_window
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


@dataclass(frozen=True)
class CallCount:
    """Calls of one kind ("app", "phone", "sip", "conference") that ended one way
    ("hung_up", "no_answer", ...), each call counted once."""

    kind: str
    end_cause: str
    calls: int


@dataclass(frozen=True)
class Percentiles:
    """Percentiles over the reports that measured a value; None without samples."""

    samples: int
    p50: float | None
    p90: float | None
    p99: float | None


@dataclass(frozen=True)
class CallStats:
    """An application's call statistics over [from_time, to_time), as GET /v1/stats/calls
    gives them: from the report each device uploads at the end of a call."""

    application: str
    from_time: datetime
    to_time: datetime
    reports: int
    calls: tuple[CallCount, ...]
    setup_ms: Percentiles
    mos: Percentiles


def _malformed(what: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_INTERNAL, f"the gateway answered {what}")


def _epoch_ms(value: datetime | int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (datetime, int)):
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"{name} must be a datetime or milliseconds since the epoch",
            field=name,
        )
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        raise ParleyError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"{name} has no time zone (use e.g. datetime.now(UTC))",
            field=name,
        )
    return round(value.timestamp() * 1000)


def _percentiles(data: Any, name: str) -> Percentiles:
    if not isinstance(data, dict) or not isinstance(data.get("samples"), int):
        raise _malformed(f"statistics without {name}")

    def value(key: str) -> float | None:
        found = data.get(key)
        return float(found) if isinstance(found, (int, float)) else None

    return Percentiles(data["samples"], value("p50"), value("p90"), value("p99"))


def call_stats_of(answer: Any) -> CallStats:
    """The CallStats of a GET /v1/stats/calls answer."""
    if not isinstance(answer, dict):
        raise _malformed("call statistics that are not a JSON object")
    try:
        calls = tuple(
            CallCount(str(c["kind"]), str(c["endCause"]), int(c["calls"])) for c in answer["calls"]
        )
        return CallStats(
            application=str(answer["application"]),
            from_time=datetime.fromisoformat(answer["from"]),
            to_time=datetime.fromisoformat(answer["to"]),
            reports=int(answer["reports"]),
            calls=calls,
            setup_ms=_percentiles(answer["setupMs"], "setupMs"),
            mos=_percentiles(answer["mos"], "mos"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _malformed(f"call statistics it should not ({exc!r})") from exc


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

    # statistics -------------------------------------------------------------------------

    async def call_stats(self, from_time: datetime | int, to_time: datetime | int) -> CallStats:
        """Statistics of the calls that started in [from_time, to_time) (at most 31 days):
        counts by kind and end cause, set-up time and MOS percentiles. Times are aware
        datetimes or milliseconds since the epoch."""
        start, end = _epoch_ms(from_time, "from_time"), _epoch_ms(to_time, "to_time")
        try:
            validate_window(start, end, "from_time", "to_time")
        except ProtocolError as err:
            raise _sdk_error(err) from err
        answer = await self._request("GET", "/v1/stats/calls", query=f"from={start}&to={end}")
        return call_stats_of(answer)

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

    async def _request(self, method: str, path: str, payload: Any = None, query: str = "") -> Any:
        """Sign and send one request (`query`: already encoded); its JSON answer (None for
        204), or the ParleyError its problem describes."""
        full_path = self._base.raw_path.rstrip("/") + path
        signed_path = f"{full_path}?{query}" if query else full_path
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        headers = sign_rest_request(
            self._key,
            self._secret,
            method,
            signed_path,
            body,
            JSON if body else "",
            hash_header=REST_SHA256_HEADER,
        )
        # encoded=True: the path goes out exactly as signed, not re-encoded or normalised.
        url = self._base.with_path(full_path, encoded=True)
        if query:
            url = URL(f"{url}?{query}", encoded=True)
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
