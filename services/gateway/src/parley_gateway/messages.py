"""What the gateway does with the client bodies it handles itself (after frame checks):
the session and presence messages. Every other client body has a route to a service
(see forward.py); `parley_protocol.bodies` checks that each has exactly one of the two.

Each handler returns False when it closed the session, True to keep reading.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from parley.v1 import client_pb2, presence_pb2
from parley_gateway.gateway import Gateway
from parley_gateway.resume import Decision, Outcome, valid_session_id
from parley_gateway.session import CLOSING, Session
from parley_gateway.tokens import Claims
from parley_protocol import bodies, framing
from parley_protocol.clock import now_ms
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.validation import validate_application_key, validate_user_id
from parley_service import access_tokens
from parley_service.logs import get_logger
from parley_service.presence import MAX_QUERY_USERS

log = get_logger("parley.gateway.session")

Handler = Callable[[Gateway, Session, client_pb2.Envelope], Awaitable[bool]]


def _not_yours(what: str) -> ParleyError:
    return ParleyError(
        ErrorCode.ERROR_CODE_PERMISSION_DENIED,
        f"the access token is for another {what} than this session's",
        "access_token",
    )


async def hello(gw: Gateway, s: Session, env: client_pb2.Envelope) -> bool:
    msg = env.hello
    try:
        validate_application_key(msg.application_key)
        validate_user_id(msg.user_id)
    except ParleyError as err:
        await s.fail(err, env.seq, framing.close_code_for(err.code))
        return False
    previous = msg.resume_session_id
    resuming = bool(previous) and gw.window.enabled and valid_session_id(previous)
    refused: ParleyError | None = None
    decision: Decision | None = None
    try:
        async with gw.sign_ins:
            if s.state == CLOSING:  # timed out or drained while it waited its turn
                return False
            # The record of the session it resumes (the Hello's word for whose, checked
            # against the token below) holds the digest of the token verified for it.
            record = (
                await gw.presence.record(msg.application_key, msg.user_id, previous)
                if resuming
                else None
            )
            try:
                claims = await _claims(gw, msg, record)
            except ParleyError as err:
                refused = err
            else:
                if s.state != CLOSING:
                    _take_claims(gw, s, claims, msg.access_token)
                    decision = await _sign_in(gw, s, msg, previous, resuming, record)
    except Exception as exc:
        log.warning("sign_in_failed", error=str(exc))
        unavailable = ParleyError(ErrorCode.ERROR_CODE_UNAVAILABLE, "cannot sign in now; reconnect")
        await s.fail(unavailable, env.seq, framing.CLOSE_TRY_AGAIN_LATER)
        return False
    if refused is not None:
        await s.fail(refused, env.seq, framing.close_code_for(refused.code))
        return False
    if s.state == CLOSING:  # timed out, drained or overflowed while signing in
        return False
    welcome = client_pb2.Welcome(
        session_id=s.session_id,
        gateway_id=gw.gateway_id,
        heartbeat_interval_ms=gw.settings.heartbeat_interval_ms,
        server_time_ms=now_ms(gw.clock),
        token_expires_at_ms=s.token_expires_at_ms,
        resume=decision.outcome if decision is not None else Outcome.RESUME_OUTCOME_UNSPECIFIED,
        resume_reason=decision.reason if decision is not None else "",
        listening=s.listening,
        gateway_pings=True,  # Gateway.ping_idle
    )
    await s.send(client_pb2.Envelope(reply_to=env.seq, welcome=welcome))
    if decision is not None and decision.resumed and not await s.replay(decision.missed):
        return True  # the connection went during the replay; its handler ends it
    await s.release()  # the device events that came meanwhile, in order
    log.debug("session_started", app=s.application_key, connection=s.connection_id)
    return True


async def _claims(
    gw: Gateway, msg: client_pb2.Hello, record: presence_pb2.PresenceEntry | None
) -> Claims:
    """The Hello's verified claims, for its application and user; a resume presenting the
    token verified for that session is not checked for its signature again."""
    claims = await gw.verifier.verify(
        msg.access_token, record.token_digest if record is not None else b""
    )
    if claims.application_key != msg.application_key:
        raise _not_yours("application")
    if claims.user_id != msg.user_id:
        raise _not_yours("user")
    return claims


async def _sign_in(
    gw: Gateway,
    s: Session,
    msg: client_pb2.Hello,
    previous: str,
    resuming: bool,
    record: presence_pb2.PresenceEntry | None,
) -> Decision | None:
    """Route the user, decide the resume (if asked; `record` is its session's, read for the
    Hello), write presence, and retire the old session's connection or entry: the NATS
    round trips of a sign-in."""
    s.connected_at_ms = now_ms(gw.clock)
    s.capabilities = bodies.capability_mask(msg.capabilities)
    s.listening = msg.listening  # written with the sign-in's presence entry
    if resuming:
        # Tentatively: events for the old session are held for this one while deciding.
        s.session_id = previous
    await gw.route(s)
    decision = (
        await gw.resumer.decide(s, previous, msg.resume_from_event, record) if previous else None
    )
    if decision is not None and decision.resumed:
        s.last_event = msg.resume_from_event  # the client has everything up to its ack
    elif resuming:
        s.session_id = s.connection_id  # a new session: what was held was the old one's
        s.held = []
    await gw.presence.put(s)
    if decision is not None and decision.holder is not None:
        # The device's old connection is still open somewhere: close it.
        await gw.resumer.take_over(s, decision.holder)
    if (
        decision is not None
        and not decision.resumed
        and decision.outcome != Outcome.RESUME_OUTCOME_REFUSED
        and valid_session_id(previous)
    ):
        await gw.presence.forget(s.application_key, s.user_id, previous, s.instance_id)
    return decision


def _take_claims(gw: Gateway, s: Session, claims: Claims, token: str) -> None:
    # Many sessions share few application keys: keep one copy of each.
    s.application_key = sys.intern(claims.application_key)
    s.user_id = claims.user_id
    s.instance_id = claims.instance_id
    s.token_expires_at_ms = claims.expires_at_ms
    s.token_digest = access_tokens.digest(token)
    gw.token_taken(claims.expires_at_ms)


async def ping(gw: Gateway, s: Session, env: client_pb2.Envelope) -> bool:
    pong = client_pb2.Pong(client_time_ms=env.ping.client_time_ms, server_time_ms=now_ms(gw.clock))
    await s.send(client_pb2.Envelope(reply_to=env.seq, pong=pong))
    return True


async def refresh_token(gw: Gateway, s: Session, env: client_pb2.Envelope) -> bool:
    try:
        claims = await gw.verifier.verify(env.refresh_token.access_token)
    except ParleyError as err:
        # The session keeps its current token until that one expires.
        await s.send_error(err, env.seq)
        return True
    if claims.application_key != s.application_key or claims.user_id != s.user_id:
        what = "application" if claims.application_key != s.application_key else "user"
        await s.fail(_not_yours(what), env.seq, framing.CLOSE_FORBIDDEN)
        return False
    _take_claims(gw, s, claims, env.refresh_token.access_token)
    accepted = client_pb2.TokenAccepted(token_expires_at_ms=claims.expires_at_ms)
    await s.send(client_pb2.Envelope(reply_to=env.seq, token_accepted=accepted))
    return True


async def listen(gw: Gateway, s: Session, env: client_pb2.Envelope) -> bool:
    s.listening = env.listen.listening
    try:
        await gw.presence.put(s)
    except Exception as exc:
        # Kept locally; the next presence refresh writes it.
        log.warning("presence_put_failed", error=str(exc))
        err = ParleyError(ErrorCode.ERROR_CODE_UNAVAILABLE, "presence store unavailable; retry")
        await s.send_error(err, env.seq)
        return True
    accepted = client_pb2.ListenAccepted(listening=s.listening)
    await s.send(client_pb2.Envelope(reply_to=env.seq, listen_accepted=accepted))
    return True


async def presence_query(gw: Gateway, s: Session, env: client_pb2.Envelope) -> bool:
    user_ids = list(env.presence_query.user_ids)
    try:
        if not user_ids:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT, "PresenceQuery names no users", "user_ids"
            )
        if len(user_ids) > MAX_QUERY_USERS:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                f"PresenceQuery names {len(user_ids)} users; the limit is {MAX_QUERY_USERS}",
                "user_ids",
            )
        for index, user_id in enumerate(user_ids):
            validate_user_id(user_id, f"user_ids[{index}]")
        counts = await gw.presence_reader.listening_devices(
            s.application_key, list(dict.fromkeys(user_ids))
        )
    except ParleyError as err:
        await s.send_error(err, env.seq)
        return True
    result = presence_pb2.PresenceResult(
        users=[
            presence_pb2.UserPresence(user_id=u, online=counts[u] > 0, devices=counts[u])
            for u in user_ids
        ]
    )
    await s.send(client_pb2.Envelope(reply_to=env.seq, presence_result=result))
    return True


async def goodbye(gw: Gateway, s: Session, env: client_pb2.Envelope) -> bool:
    s.leaving = True  # no resume: the session ends here
    await gw.closed(s)  # forget presence at once, before the closing handshake
    await s.close(framing.CLOSE_NORMAL, "goodbye")
    return False


HANDLERS: dict[str, Handler] = {
    "hello": hello,
    "ping": ping,
    "refresh_token": refresh_token,
    "listen": listen,
    "presence_query": presence_query,
    "goodbye": goodbye,
}
