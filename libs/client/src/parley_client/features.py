"""The seam a client feature (calls, messaging, push) plugs into `ParleyClient` by.

A `Feature` names the Envelope bodies it receives; the client hands it those frames and
tells it of each connection and disconnection, in order, on a task of its own. Its
`FeatureLink` is what it may do with the client in return: send and request on the live
connection, and log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from google.protobuf.message import Message

from parley_client.config import Capabilities, ClientConfig
from parley_client.errors import ErrorType, ParleyError
from parley_client.logs import AreaLog
from parley_protocol.bodies import CLIENT_BODIES, body_of
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import client as pb

R = TypeVar("R", bound=Message)


@dataclass(frozen=True)
class Connected:
    """A connection to a gateway, as features hear of it (before any frame that came on it)."""

    reconnected: bool  # not the client's first connection: events may have been missed
    resumed: bool  # the gateway resumed the previous session, so no event was missed
    session_id: str
    gateway_id: str


class Feature:
    """A capability of the client (calls, messaging, push). Subclass it, set `name` and
    `bodies`, override the handlers you need, and `client.add_feature(it)`.

    Each feature's handlers run one at a time, in order, on a task of the feature's own: a
    slow handler delays only its own feature. A handler that raises is logged and the next
    frame still comes.
    """

    # Unique among a client's features; the area of its log lines.
    name: str = ""
    # The EVENT (or REPLY) bodies of the Envelope this feature receives; no two features
    # of a client share one.
    bodies: frozenset[str] = frozenset()

    _link: FeatureLink | None = None

    def attached(self, link: FeatureLink) -> None:
        """Called once, when the feature is added: `link` is kept (see `link`)."""
        self._link = link

    @property
    def link(self) -> FeatureLink:
        """What the feature may do with its client: send, request and log."""
        if self._link is None:
            raise ParleyError(
                ErrorCode.ERROR_CODE_WRONG_STATE,
                f"the {self.name or type(self).__name__} feature is not attached to a client",
                ErrorType.OTHER,
            )
        return self._link

    async def on_frame(self, envelope: pb.Envelope) -> None:
        """A frame with one of `bodies` that is not the reply to a request of this client."""

    async def on_connected(self, connected: Connected) -> None:
        """The client is connected (again); also at once for a feature added while it is."""

    async def on_disconnected(self, reason: ParleyError) -> None:
        """The connection ended: lost (the client reconnects) or failed; once per connection.
        `terminate()` tells it once more, last, whatever the client was doing."""


class Channel(Protocol):
    """Where a link's frames go: the client's live session."""

    async def send(self, body: str, message: Message, traceparent: str = "") -> int: ...

    async def request(
        self, body: str, message: Message, timeout: float | None = None, traceparent: str = ""
    ) -> pb.Envelope: ...


class FeatureLink:
    """What a feature may do with its client. The client makes one per feature.

    `channel(body)` is the live session to send `body` on; it raises ParleyError when the
    client is not running or not connected.
    """

    def __init__(
        self,
        *,
        channel: Callable[[str], Channel],
        config: ClientConfig,
        capabilities: Callable[[], Capabilities],
        log: AreaLog,
    ) -> None:
        self._channel = channel
        self._config = config
        self._capabilities = capabilities
        self._log = log

    @property
    def user_id(self) -> str | None:
        return self._config.user_id

    @property
    def application_key(self) -> str | None:
        return self._config.application_key

    @property
    def log(self) -> AreaLog:
        """The client's log, under the feature's name."""
        return self._log

    @property
    def capabilities(self) -> Capabilities:
        """A copy of the client's capability switches."""
        return self._capabilities()

    async def send(self, message: Message, traceparent: str = "") -> int:
        """Send `message` (a message of a client body) on the live connection; its seq.
        `traceparent` (see trace_context) puts the frame in that trace."""
        body = client_body(message)
        return await self._channel(body).send(body, message, traceparent)

    async def request(
        self,
        message: Message,
        reply: type[R],
        timeout: float | None = None,
        traceparent: str = "",
    ) -> R:
        """Send `message` and return the body of its reply, of type `reply` (an EchoReply
        for an EchoRequest). Raises ParleyError for an Error reply, a reply of another type,
        a timeout (`timeout`, default the client's request timeout) or a lost connection.
        `traceparent` (see trace_context) puts the frame in that trace."""
        body = client_body(message)
        envelope = await self._channel(body).request(body, message, timeout, traceparent)
        name = envelope.WhichOneof("body")
        answer = getattr(envelope, name) if name else None
        if not isinstance(answer, reply):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INTERNAL,
                f"the gateway answered {body} with {name or 'nothing'}, not "
                f"{reply.DESCRIPTOR.full_name}",
            )
        return answer


# Client bodies the session itself sends (sign-in, heartbeats, tokens, listening, leaving):
# a feature sending one would confuse the session's view of its connection.
SESSION_BODIES = frozenset({"hello", "ping", "refresh_token", "listen", "goodbye"})


def client_body(message: Message) -> str:
    """The Envelope body a feature sends `message` in; ValueError if clients send none, or
    the session keeps it to itself."""
    body = body_of(message)
    if body not in CLIENT_BODIES:
        raise ValueError(
            f"{message.DESCRIPTOR.full_name} is the {body!r} body, which clients do not send"
        )
    if body in SESSION_BODIES:
        raise ValueError(f"{body!r} is sent by the client's session, not by a feature")
    return body
