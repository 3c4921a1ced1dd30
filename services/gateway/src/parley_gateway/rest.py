"""The app-backend REST API: conferences, callouts and call statistics, for an
application's own servers.

Shaped like the hosted platforms' voice REST APIs (paths, JSON in camelCase, commands), so
an app backend written for them moves over with a new base URL and its application key
and secret. Every route first verifies the request's signature (`signed_requests.py`);
the verified application key is the only application a request acts on. Each route then
sends one message to the service it concerns (conference.proto to the conference service,
stats.proto to the stats service) and maps its answer to JSON, or its error to a problem
response (`http_api.traced`). The document at /v1/openapi.json describes these
routes.

Conference ids are free text of up to 64 characters (spaces, dots, `*`, `>` included), so
they travel percent-encoded in the path; aiohttp hands the handlers the decoded id.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from parley.v1 import conference_pb2, stats_pb2
from parley_gateway.metrics import REST_REQUESTS, REST_SECONDS
from parley_gateway.request_body import invalid, json_object
from parley_gateway.service_requests import ask
from parley_gateway.signed_requests import RequestVerifier, SignedRequest
from parley_gateway.stats_rest import STATS_CALLS_PATH, aggregate_json, stats_window
from parley_protocol import subjects
from parley_protocol.clock import Clock, now_ms
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.http import status_for
from parley_protocol.validation import (
    validate_call_id,
    validate_conference_id,
    validate_headers,
    validate_phone_number,
    validate_sip_headers,
    validate_sip_identity,
    validate_user_id,
)
from parley_service.bus import Bus

CONFERENCE_TIMEOUT_SECONDS = 5.0
# A callout starts a call (a user's devices ring, or a phone is dialled): a little longer.
CALLOUT_TIMEOUT_SECONDS = 10.0
# Aggregates read up to 31 days of reports.
STATS_TIMEOUT_SECONDS = 10.0

CONFERENCE_PATH = "/v1/conferences/id/{conferenceId}"
PARTICIPANT_PATH = "/v1/conferences/id/{conferenceId}/{callId}"
CALLOUTS_PATH = "/v1/callouts"

COMMANDS = {
    "mute": conference_pb2.CONFERENCE_COMMAND_KIND_MUTE,
    "unmute": conference_pb2.CONFERENCE_COMMAND_KIND_UNMUTE,
}
DESTINATION_TYPES = ("username", "number", "sip")

SignedHandler = Callable[[web.Request, SignedRequest], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

KICK = conference_pb2.CONFERENCE_COMMAND_KIND_KICK


def participant_json(p: conference_pb2.ConferenceParticipant, now: int) -> dict[str, Any]:
    """One participant as the hosted platforms list it, plus the user id."""
    return {
        "id": p.call_id,
        "userId": p.user_id,
        "cli": p.number,
        "duration": max(0, (now - p.joined_at_ms) // 1000) if p.joined_at_ms else 0,
        "muted": p.muted,
        "onhold": False,
    }


def _conference_id(request: web.Request) -> str:
    return validate_conference_id(request.match_info["conferenceId"], "conferenceId")


def _call_id(request: web.Request) -> str:
    return validate_call_id(request.match_info["callId"], "callId")


def _no_content() -> web.Response:
    return web.Response(status=204)


def _not_found(reason: str, field: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_NOT_FOUND, reason, field)


def _string(data: dict[str, Any], name: str, where: str = "") -> str:
    value = data.get(name)
    field = f"{where}.{name}" if where else name
    if value is None:
        raise invalid(f"{field} is missing", field)
    if not isinstance(value, str):
        raise invalid(f"{field} must be a string, not {type(value).__name__}", field)
    return value


def _object(data: dict[str, Any], name: str, where: str = "") -> dict[str, Any]:
    value = data.get(name)
    field = f"{where}.{name}" if where else name
    if value is None:
        raise invalid(f"{field} is missing", field)
    if not isinstance(value, dict):
        raise invalid(f"{field} must be a JSON object, not {type(value).__name__}", field)
    return value


def command_of(data: dict[str, Any]) -> int:
    """The ConferenceCommandKind of a PATCH body {"command": "mute" | "unmute"}."""
    command = _string(data, "command")
    kind = COMMANDS.get(command.lower())
    if kind is None:
        raise invalid(
            f"command {command[:40]!r} is not supported: a participant takes 'mute' or "
            "'unmute' (Parley conferences have no hold)",
            "command",
        )
    return kind


def callout_of(data: dict[str, Any], application_key: str) -> conference_pb2.ConferenceCallout:
    """The ConferenceCallout a POST /v1/callouts body asks for. Members the hosted platforms
    take and Parley has no use for (custom, cli, greeting, ...) are ignored."""
    method = _string(data, "method")
    if method != "conferenceCallout":
        raise invalid(
            f"method {method[:40]!r} is not supported: the only callout is 'conferenceCallout'",
            "method",
        )
    callout = _object(data, "conferenceCallout")
    where = "conferenceCallout"
    conference_id = validate_conference_id(
        _string(callout, "conferenceId", where), f"{where}.conferenceId"
    )
    destination = _object(callout, "destination", where)
    where_to = f"{where}.destination"
    kind = _string(destination, "type", where_to)
    endpoint = _string(destination, "endpoint", where_to)
    headers = callout.get("headers") or {}
    if not isinstance(headers, dict):
        raise invalid(
            f"{where}.headers must be a JSON object of strings, not {type(headers).__name__}",
            f"{where}.headers",
        )
    validate_headers(headers, f"{where}.headers")
    message = conference_pb2.ConferenceCallout(
        application_key=application_key, conference_id=conference_id, headers=headers
    )
    if kind == "username":
        message.user_id = validate_user_id(endpoint, f"{where_to}.endpoint")
    elif kind == "number":
        message.phone_number = validate_phone_number(endpoint, f"{where_to}.endpoint")
        validate_sip_headers(headers, f"{where}.headers")
    elif kind == "sip":
        message.sip_uri = validate_sip_identity(endpoint, f"{where_to}.endpoint")
        validate_sip_headers(headers, f"{where}.headers")
    else:
        raise invalid(
            f"destination type {kind[:40]!r} is not supported: use 'username' (an "
            "application user), 'number' (a phone number in E.164) or 'sip' (a SIP address "
            "user@host)",
            f"{where_to}.type",
        )
    return message


class RestApi:
    def __init__(self, bus: Bus, clock: Clock, max_skew_seconds: float) -> None:
        self._bus = bus
        self._clock = clock
        self._verifier = RequestVerifier(bus, clock, max_skew_seconds)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(CONFERENCE_PATH, self._signed(self.conference), allow_head=False),
            web.delete(CONFERENCE_PATH, self._signed(self.kick_all)),
            web.patch(PARTICIPANT_PATH, self._signed(self.command)),
            web.delete(PARTICIPANT_PATH, self._signed(self.kick)),
            web.post(CALLOUTS_PATH, self._signed(self.callout)),
            web.get(STATS_CALLS_PATH, self._signed(self.call_stats), allow_head=False),
        ]

    def _signed(self, handler: SignedHandler) -> Handler:
        """`handler` behind the signature check, counted by route and status."""

        async def run(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            resource = request.match_info.route.resource
            route = f"{request.method} {resource.canonical if resource is not None else '?'}"
            status = 500
            try:
                response = await handler(request, await self._verifier.verify(request))
                status = response.status
                return response
            except ParleyError as err:
                status = status_for(err.code)
                raise
            finally:
                REST_REQUESTS.labels(route, str(status)).inc()
                REST_SECONDS.labels(route).observe(time.perf_counter() - started)

        return run

    async def _command(
        self, signed: SignedRequest, conference_id: str, call_id: str, kind: int
    ) -> int:
        reply = await ask(
            self._bus,
            "conference",
            subjects.CONFERENCE_COMMAND,
            conference_pb2.ConferenceCommand(
                application_key=signed.application_key,
                conference_id=conference_id,
                call_id=call_id,
                command=kind,  # type: ignore[arg-type]
            ),
            conference_pb2.ConferenceCommandReply,
            CONFERENCE_TIMEOUT_SECONDS,
        )
        affected: int = reply.affected
        return affected

    # routes ---------------------------------------------------------------------------

    async def conference(self, request: web.Request, signed: SignedRequest) -> web.Response:
        """GET: the room's participants; a room with nobody in it is not found."""
        conference_id = _conference_id(request)
        info = await ask(
            self._bus,
            "conference",
            subjects.CONFERENCE_QUERY,
            conference_pb2.ConferenceQuery(
                application_key=signed.application_key, conference_id=conference_id
            ),
            conference_pb2.ConferenceInfo,
            CONFERENCE_TIMEOUT_SECONDS,
        )
        if not info.participants:
            raise _not_found(f"conference {conference_id!r} has no participants", "conferenceId")
        now = info.now_ms or now_ms(self._clock)
        return web.json_response(
            {"participants": [participant_json(p, now) for p in info.participants]}
        )

    async def command(self, request: web.Request, signed: SignedRequest) -> web.Response:
        """PATCH: mute or unmute one participant."""
        conference_id, call_id = _conference_id(request), _call_id(request)
        kind = command_of(json_object(signed.body))
        if not await self._command(signed, conference_id, call_id, kind):
            raise _participant_not_found(conference_id, call_id)
        return _no_content()

    async def kick(self, request: web.Request, signed: SignedRequest) -> web.Response:
        """DELETE: remove one participant (its call ends with REMOVED)."""
        conference_id, call_id = _conference_id(request), _call_id(request)
        if not await self._command(signed, conference_id, call_id, KICK):
            raise _participant_not_found(conference_id, call_id)
        return _no_content()

    async def kick_all(self, request: web.Request, signed: SignedRequest) -> web.Response:
        """DELETE: remove every participant."""
        conference_id = _conference_id(request)
        if not await self._command(signed, conference_id, "", KICK):
            raise _not_found(f"conference {conference_id!r} has no participants", "conferenceId")
        return _no_content()

    async def callout(self, request: web.Request, signed: SignedRequest) -> web.Response:
        """POST: connect a user or a phone number to a room; answers the new call's id."""
        message = callout_of(json_object(signed.body), signed.application_key)
        reply = await ask(
            self._bus,
            "conference",
            subjects.CONFERENCE_CALLOUT,
            message,
            conference_pb2.ConferenceCalloutReply,
            CALLOUT_TIMEOUT_SECONDS,
        )
        return web.json_response({"callId": reply.call_id})

    async def call_stats(self, request: web.Request, signed: SignedRequest) -> web.Response:
        """GET: the application's calls by kind and end cause, set-up time and MOS
        percentiles, over [from, to)."""
        start, end = stats_window(request.query.getall("from", []), request.query.getall("to", []))
        aggregate = await ask(
            self._bus,
            "stats",
            subjects.STATS_AGGREGATE,
            stats_pb2.CallAggregateQuery(
                application_key=signed.application_key, from_ms=start, to_ms=end
            ),
            stats_pb2.CallAggregate,
            STATS_TIMEOUT_SECONDS,
        )
        return web.json_response(aggregate_json(aggregate))


def _participant_not_found(conference_id: str, call_id: str) -> ParleyError:
    return _not_found(
        f"conference {conference_id!r} has no participant with call id {call_id}", "callId"
    )
