"""Every NATS subject, stream and KV bucket name, built here and nowhere else.

User IDs may hold spaces, `.`, `*` and `>`, so they never appear raw in a subject or a
KV key: they travel as base64url without padding (`encode_user_id`).
"""

from __future__ import annotations

import base64

# Request/reply verbs of the auth service.
AUTH_REGISTER = "parley.auth.register"
AUTH_TOKEN = "parley.auth.token"
AUTH_JWKS = "parley.auth.jwks"
AUTH_APP_LOOKUP = "parley.auth.app_lookup"
AUTH_USER_LOOKUP = "parley.auth.user_lookup"
# Whom a call from a phone to a number rings (parley.v1.NumberLookupRequest).
AUTH_NUMBER_LOOKUP = "parley.auth.number_lookup"
# Call credits (parley.v1 credits.proto), asked by the sip service: hold credit before
# dialing a phone number, report the call's duration while it runs, charge it at the end.
AUTH_CREDITS_RESERVE = "parley.auth.credits.reserve"
AUTH_CREDITS_TOUCH = "parley.auth.credits.touch"
AUTH_CREDITS_SETTLE = "parley.auth.credits.settle"
# Whether an app backend's REST request is signed with its application's secret
# (parley.v1.VerifyRequestSignature).
AUTH_VERIFY_REQUEST = "parley.auth.verify_request"
# Published by auth when its signing keys change (rotation): verifiers refetch the JWKS.
AUTH_KEYS_CHANGED = "parley.auth.keys_changed"

# Queue groups: one per service, so replicas share requests.
AUTH_QUEUE = "auth"

# Every gateway announces itself here; all gateways listen (parley.v1.GatewayHeartbeat).
GATEWAY_HEARTBEAT = "parley.gateway.heartbeat"

# KV buckets.
PRESENCE_BUCKET = "presence"
# One key per call, <app>.<call_id> (parley.v1.CallRecord).
CALLS_BUCKET = "calls"


def call_key(app_key: str, call_id: str) -> str:
    return f"{app_key}.{call_id}"


# Header names carried on bus messages.
TRACEPARENT_HEADER = "traceparent"


def encode_user_id(user_id: str) -> str:
    """A user ID as a subject token / KV key part: base64url, no padding."""
    return base64.urlsafe_b64encode(user_id.encode("ascii")).rstrip(b"=").decode("ascii")


def decode_user_id(token: str) -> str:
    padded = token + "=" * (-len(token) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")


def client_request(service: str, body: str) -> str:
    """Where the gateway forwards a routed client body (queue group: the service's name)."""
    return f"parley.client.{service}.{body}"


# Device events are published on parley.dev.<app>.<user_enc>.<target>: the target is
# ALL_DEVICES (every device of the user) or one session id. With the resume window on, the
# stream EVENTS keeps them and republishes each, numbered, on parley.ev.<...> (the same
# tokens), which is what gateways then subscribe to.
ALL_DEVICES = "_"
DEVICE_EVENTS = "parley.dev.>"
LIVE_EVENTS_PREFIX = "parley.ev."
EVENTS_STREAM = "EVENTS"


def device_events(app_key: str, user_id: str) -> str:
    """Events for every connected device of a user."""
    return f"parley.dev.{app_key}.{encode_user_id(user_id)}.{ALL_DEVICES}"


def session_events(app_key: str, user_id: str, session_id: str) -> str:
    """Events for one device session of a user."""
    return f"parley.dev.{app_key}.{encode_user_id(user_id)}.{session_id}"


def user_events(app_key: str, user_id: str, live: bool = False) -> str:
    """Every event of a user's devices (a gateway's one subscription per user, and the
    resume window's filter); `live`: the numbered copies the window republishes."""
    prefix = LIVE_EVENTS_PREFIX if live else "parley.dev."
    return f"{prefix}{app_key}.{encode_user_id(user_id)}.>"


def gateway_takeover(gateway_id: str) -> str:
    """Where a gateway hears that a session it holds was resumed elsewhere."""
    return f"parley.gateway.{gateway_id}.takeover"


def presence_key(app_key: str, user_id: str, connection_id: str) -> str:
    return f"{app_key}.{encode_user_id(user_id)}.{connection_id}"


def presence_user_filter(app_key: str, user_id: str) -> str:
    return f"{app_key}.{encode_user_id(user_id)}.*"


# Push: the calls and messaging services ask the push service to notify users with no device
# online (request/reply, queue group PUSH_QUEUE); push jobs go through the stream PUSH, one
# subject per provider, and the push service's replicas share its durable consumer.
PUSH_NOTIFY = "parley.push.notify"
PUSH_QUEUE = "push"
PUSH_STREAM = "PUSH"
PUSH_JOBS = "parley.push.jobs.>"
PUSH_CONSUMER = "push-senders"


def push_jobs(provider: str) -> str:
    """Where a push job for `provider` (fcm, apns, web_push) is published."""
    return f"parley.push.jobs.{provider}"


# Remote call legs (calls.proto, DialRequest / LegEvent / LegReport): the calls service dials
# the service that holds a call's far side, tells the leg what it must hear, and hears its
# reports on one subject.
SIP_QUEUE = "sip"
CONFERENCE_QUEUE = "conference"
CALLS_LEG_REPORTS = "parley.calls.leg"
CALLS_QUEUE = "calls"
CALL_LEGS = "parley.call.leg.>"


def call_dial(service: str) -> str:
    """Where the calls service offers a call's far side to `service` (queue group `service`)."""
    return f"parley.call.dial.{service}"


# The sessions a remote leg stands under: the far side of a call, or a leg that called in
# (LEG_SESSION); a leg that called another remote leg (LEG_CALLER_SESSION).
LEG_SESSION = "leg"
LEG_CALLER_SESSION = "leg-caller"


def call_leg(app_key: str, call_id: str, session_id: str = LEG_SESSION) -> str:
    """Where the events of one remote leg go (app key and call id are validated GUIDs); a
    leg that called another has a subject of its own."""
    base = f"parley.call.leg.{app_key}.{call_id}"
    return base if session_id == LEG_SESSION else f"{base}.{session_id}"


# Conference rooms (conference.proto). App-backend requests (REST on the gateway) go to any
# conference replica (queue group conference), which passes them to the room's replica.
CONFERENCE_QUERY = "parley.conference.query"
CONFERENCE_COMMAND = "parley.conference.command"
CONFERENCE_CALLOUT = "parley.conference.callout"
# KV buckets: which replica holds a room (parley.v1.RoomPlacement), and each live replica's
# load (parley.v1.ReplicaLoad).
CONFERENCE_ROOMS_BUCKET = "conference_rooms"
CONFERENCE_REPLICAS_BUCKET = "conference_replicas"


def conference_key(app_key: str, conference_id: str) -> str:
    """A room's key: the app key and the conference id (any characters, so encoded)."""
    return f"{app_key}.{encode_user_id(conference_id)}"


def conference_replica(replica_id: str, verb: str) -> str:
    """One conference replica's own subject for `verb` (dial, query, command, callout)."""
    return f"parley.conference.replica.{replica_id}.{verb}"


# Call statistics: the stats service takes each uploaded report onto the stream STATS (on
# the application's subject) before it answers, and stores it from there in batches.
STATS_QUEUE = "stats"
STATS_STREAM = "STATS"
STATS_REPORTS = "parley.stats.report.>"
STATS_CONSUMER = "stats-writers"
# An application's aggregates (parley.v1.CallAggregateQuery -> CallAggregate).
STATS_AGGREGATE = "parley.stats.aggregate"


def stats_reports(app_key: str) -> str:
    """The stream subject of an application's call reports."""
    return f"parley.stats.report.{app_key}"
