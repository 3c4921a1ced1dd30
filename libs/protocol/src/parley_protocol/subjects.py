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
# Published by auth when its signing keys change (rotation): verifiers refetch the JWKS.
AUTH_KEYS_CHANGED = "parley.auth.keys_changed"

# Queue groups: one per service, so replicas share requests.
AUTH_QUEUE = "auth"

# Every gateway announces itself here; all gateways listen (parley.v1.GatewayHeartbeat).
GATEWAY_HEARTBEAT = "parley.gateway.heartbeat"

# KV buckets.
PRESENCE_BUCKET = "presence"

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


def device_events(app_key: str, user_id: str) -> str:
    """Events for every connected device of a user; each gateway holding one subscribes."""
    return f"parley.dev.{app_key}.{encode_user_id(user_id)}"


def connection_events(gateway_id: str, connection_id: str) -> str:
    """Events for one device connection."""
    return f"parley.conn.{gateway_id}.{connection_id}"


def gateway_connections(gateway_id: str) -> str:
    """Wildcard a gateway subscribes to once for all of its connections."""
    return f"parley.conn.{gateway_id}.*"


def presence_key(app_key: str, user_id: str, connection_id: str) -> str:
    return f"{app_key}.{encode_user_id(user_id)}.{connection_id}"


def presence_user_filter(app_key: str, user_id: str) -> str:
    return f"{app_key}.{encode_user_id(user_id)}.*"
