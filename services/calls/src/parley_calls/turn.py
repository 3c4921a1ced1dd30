"""ICE servers for devices: STUN as configured, TURN with short-lived credentials.

TURN credentials follow the REST scheme TURN servers such as coturn check with a shared
secret (`use-auth-secret`): the username is "<expiry unix time>:<app>.<user>" and the
password Base64(HMAC-SHA1(secret, username)), so the TURN server needs no call to Parley.
The user ID goes in its subject-token form (base64url): coturn refuses usernames holding
spaces and other characters user IDs may have, and a second ':' would end its timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field

from parley.v1 import calls_pb2
from parley_calls.settings import CallsSettings
from parley_protocol import subjects


def turn_username(expires_at: int, application_key: str, user_id: str) -> str:
    return f"{expires_at}:{application_key}.{subjects.encode_user_id(user_id)}"


def turn_password(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class IceConfig:
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    secret: str = field(default="", repr=False)
    ttl_seconds: int = 3600

    @classmethod
    def from_settings(cls, settings: CallsSettings) -> IceConfig:
        return cls(
            stun_urls=tuple(settings.stun_server_urls),
            turn_urls=tuple(settings.turn_server_urls),
            secret=settings.turn_secret,
            ttl_seconds=settings.turn_ttl_seconds,
        )

    def servers(self, application_key: str, user_id: str, now: float) -> calls_pb2.IceServers:
        """The servers for one user at `now` (unix seconds); none when none are configured."""
        found = calls_pb2.IceServers()
        if self.stun_urls:
            found.servers.append(calls_pb2.IceServer(urls=self.stun_urls))
        if self.turn_urls:
            expires_at = int(now) + self.ttl_seconds
            username = turn_username(expires_at, application_key, user_id)
            found.servers.append(
                calls_pb2.IceServer(
                    urls=self.turn_urls,
                    username=username,
                    credential=turn_password(self.secret, username),
                )
            )
            found.expires_at_ms = expires_at * 1000
        return found
