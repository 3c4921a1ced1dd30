"""The push senders against local provider servers speaking FCM's, APNs' and Web Push's
real HTTP APIs over HTTPS: what arrives, authentication tokens and their renewal, dead
tokens, outages, wrong credentials, HTTP/2 for APNs and the Web Push encryption."""

from __future__ import annotations

import asyncio
import collections
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jwt
import pytest
import pytest_asyncio

from parley_devstack.ports import free_port
from parley_push.providers import http as provider_http
from parley_push.providers.apns import ApnsCredentials, ApnsSender
from parley_push.providers.base import Notification, OutcomeKind
from parley_push.providers.fcm import FcmCredentials, FcmSender
from parley_push.providers.h2_client import H2Client
from parley_push.providers.web_push import WebPushCredentials, WebPushSender
from tests.support.providers import (
    ApnsKey,
    FakeApns,
    FakeFcm,
    FakeWebPush,
    LocalTls,
    VapidKeyPair,
    device_token,
    p8_key,
    vapid_key_pair,
    with_other_key,
)

pytestmark = pytest.mark.timeout(60)

CALL = Notification(
    kind="call", payload="v1.call.payload.c2ln", collapse_id="call-7", ttl_seconds=30
)
MESSAGE = Notification(
    kind="message", payload="v1.message.payload.c2ln", collapse_id="msg-9", ttl_seconds=3600
)
FCM_TOKEN = "fcm-device-token:APA91b" + "x" * 40


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    return LocalTls.create(tmp_path_factory.mktemp("provider-tls"))


# FCM


@pytest_asyncio.fixture
async def fcm(tls: LocalTls) -> AsyncIterator[FakeFcm]:
    async with FakeFcm(tls, token_lifetime=3600) as server:
        yield server


def fcm_sender(fcm: FakeFcm, tls: LocalTls, account_json: str | None = None) -> FcmSender:
    credentials = FcmCredentials.from_service_account(
        account_json or fcm.service_account(), endpoint=fcm.url
    )
    return FcmSender(credentials, ca_file=tls.ca_file)


async def test_fcm_push_arrives_as_a_data_message_with_android_options(
    fcm: FakeFcm, tls: LocalTls
) -> None:
    sender = fcm_sender(fcm, tls)
    try:
        outcome = await sender.send(FCM_TOKEN, CALL)
    finally:
        await sender.close()
    assert outcome.kind is OutcomeKind.SENT and outcome.status == 200
    assert outcome.reason.startswith("projects/parley-test/messages/")
    (push,) = fcm.pushes
    assert (push.token, push.kind, push.payload) == (FCM_TOKEN, "call", CALL.payload)
    message = push.body["message"]
    assert message["data"] == {"parley": CALL.payload, "kind": "call"}
    assert message["android"] == {"priority": "high", "ttl": "30s", "collapse_key": "call-7"}
    scheme, _, bearer = push.headers["authorization"].partition(" ")
    assert scheme == "Bearer" and bearer in fcm.access_tokens


async def test_fcm_fetches_one_access_token_for_many_concurrent_sends(
    fcm: FakeFcm, tls: LocalTls
) -> None:
    sender = fcm_sender(fcm, tls)
    try:
        outcomes = await asyncio.gather(
            *(sender.send(f"{FCM_TOKEN}{i}", MESSAGE) for i in range(60))
        )
    finally:
        await sender.close()
    assert {o.kind for o in outcomes} == {OutcomeKind.SENT}
    assert len(fcm.pushes) == 60
    assert fcm.token_requests == 1 and sender.token_fetches == 1
    assert len({push.headers["authorization"] for push in fcm.pushes}) == 1


async def test_fcm_renews_the_access_token_a_minute_before_it_expires(tls: LocalTls) -> None:
    # expires_in 61 s: the sender keeps it for 1 s only.
    async with FakeFcm(tls, token_lifetime=61) as fcm:
        sender = fcm_sender(fcm, tls)
        try:
            first = await sender.send(FCM_TOKEN, MESSAGE)
            again = await sender.send(FCM_TOKEN, MESSAGE)
            assert fcm.token_requests == 1  # still fresh
            await asyncio.sleep(1.2)
            later = await sender.send(FCM_TOKEN, MESSAGE)
        finally:
            await sender.close()
    assert [o.kind for o in (first, again, later)] == [OutcomeKind.SENT] * 3
    assert fcm.token_requests == 2
    bearers = [push.headers["authorization"] for push in fcm.pushes]
    assert bearers[0] == bearers[1] != bearers[2]


async def test_fcm_renews_a_refused_access_token_once_for_all_sends(
    fcm: FakeFcm, tls: LocalTls
) -> None:
    sender = fcm_sender(fcm, tls)
    try:
        assert (await sender.send(FCM_TOKEN, MESSAGE)).kind is OutcomeKind.SENT
        fcm.expire_access_tokens()  # revoked early: the API answers 401
        outcomes = await asyncio.gather(*(sender.send(FCM_TOKEN, MESSAGE) for _ in range(20)))
    finally:
        await sender.close()
    assert {o.kind for o in outcomes} == {OutcomeKind.SENT}
    assert fcm.auth_failures == 20  # each send was refused once, then sent again
    assert fcm.token_requests == 2
    assert len(fcm.pushes) == 21


async def test_fcm_dead_and_invalid_tokens_are_dead(fcm: FakeFcm, tls: LocalTls) -> None:
    fcm.mark_dead(FCM_TOKEN)
    sender = fcm_sender(fcm, tls)
    try:
        gone = await sender.send(FCM_TOKEN, CALL)
        invalid = await sender.send("not-a-token", CALL)
        alive = await sender.send(FCM_TOKEN + "2", CALL)
    finally:
        await sender.close()
    assert gone.kind is OutcomeKind.DEAD_TOKEN and gone.status == 404
    assert "UNREGISTERED" in gone.reason
    assert invalid.kind is OutcomeKind.DEAD_TOKEN and invalid.status == 400
    assert alive.kind is OutcomeKind.SENT
    assert [push.token for push in fcm.pushes] == [FCM_TOKEN + "2"]


async def test_fcm_outage_is_retried_after_what_it_says(fcm: FakeFcm, tls: LocalTls) -> None:
    sender = fcm_sender(fcm, tls)
    try:
        fcm.start_outage(retry_after=7)
        down = await sender.send(FCM_TOKEN, MESSAGE)
        fcm.start_outage()
        down_silent = await sender.send(FCM_TOKEN, MESSAGE)
        fcm.end_outage()
        back = await sender.send(FCM_TOKEN, MESSAGE)
    finally:
        await sender.close()
    assert (down.kind, down.status, down.retry_after) == (OutcomeKind.RETRY, 503, 7.0)
    assert "UNAVAILABLE" in down.reason
    assert (down_silent.kind, down_silent.retry_after) == (OutcomeKind.RETRY, None)
    assert back.kind is OutcomeKind.SENT and len(fcm.pushes) == 1


async def test_fcm_unknown_key_fails_in_one_exchange_for_all_waiting_sends(
    fcm: FakeFcm, tls: LocalTls
) -> None:
    forged = with_other_key(fcm.service_account())
    sender = fcm_sender(fcm, tls, forged)
    try:
        outcomes = await asyncio.gather(*(sender.send(FCM_TOKEN, CALL) for _ in range(10)))
    finally:
        await sender.close()
    assert {o.kind for o in outcomes} == {OutcomeKind.FAILED}
    assert outcomes[0].status == 400 and "invalid_grant" in outcomes[0].reason
    assert fcm.token_requests == 1 and fcm.auth_failures == 1
    assert fcm.pushes == []


async def test_a_provider_nobody_listens_for_is_retried(fcm: FakeFcm, tls: LocalTls) -> None:
    credentials = FcmCredentials.from_service_account(
        fcm.service_account(), endpoint=f"https://127.0.0.1:{free_port()}"
    )
    sender = FcmSender(credentials, ca_file=tls.ca_file)
    try:
        outcome = await sender.send(FCM_TOKEN, CALL)
    finally:
        await sender.close()
    assert outcome.kind is OutcomeKind.RETRY and outcome.status == 0
    assert "Connect" in outcome.reason  # a connection was refused
    assert fcm.token_requests == 1  # the token endpoint answered; the API did not


async def test_a_provider_that_never_answers_is_retried_within_the_bound(
    tls: LocalTls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provider_http, "TOTAL_TIMEOUT_SECONDS", 0.5)
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # accepts the connection, never says a word (no TLS)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    credentials = ApnsCredentials.from_p8(
        p8_key(),
        team_id="ABCDEFGHIJ",
        key_id="KEYID12345",
        topic="org.parley.app",
        endpoint=f"https://127.0.0.1:{port}",
    )
    sender = ApnsSender(credentials, ca_file=tls.ca_file)
    try:
        started = time.monotonic()
        outcome = await sender.send(device_token(), CALL)
        elapsed = time.monotonic() - started
    finally:
        await sender.close()
        for writer in accepted:
            writer.close()
        server.close()
    assert outcome.kind is OutcomeKind.RETRY and outcome.status == 0
    assert "no answer within 0.5 s" in outcome.reason
    assert 0.4 < elapsed < 3.0 and accepted


# APNs


@pytest_asyncio.fixture
async def apns(tls: LocalTls) -> AsyncIterator[FakeApns]:
    async with FakeApns(tls, topic="org.parley.app") as server:
        yield server


def apns_sender(
    apns: FakeApns, tls: LocalTls, key: ApnsKey | None = None, topic: str = ""
) -> ApnsSender:
    key = key or apns.new_key()
    credentials = ApnsCredentials.from_p8(
        key.private_key_pem,
        team_id=key.team_id,
        key_id=key.key_id,
        topic=topic or apns.topic,
        endpoint=apns.url,
    )
    return ApnsSender(credentials, ca_file=tls.ca_file)


async def test_apns_call_goes_to_the_voip_topic_over_http2(apns: FakeApns, tls: LocalTls) -> None:
    token = device_token()
    sender = apns_sender(apns, tls)
    try:
        before = int(time.time())
        outcome = await sender.send(token, CALL)
    finally:
        await sender.close()
    assert outcome.kind is OutcomeKind.SENT and outcome.status == 200 and outcome.reason
    (push,) = apns.pushes
    assert push.http_version == "2" and apns.http1_requests == 0
    assert (push.token, push.kind, push.payload) == (token, "call", CALL.payload)
    assert push.body == {"aps": {}, "parley": CALL.payload, "kind": "call"}
    headers = push.headers
    assert headers["apns-topic"] == "org.parley.app.voip"
    assert headers["apns-push-type"] == "voip"
    assert headers["apns-priority"] == "10"
    assert headers["apns-collapse-id"] == "call-7"
    assert before + 30 <= int(headers["apns-expiration"]) <= int(time.time()) + 30
    assert headers["authorization"].startswith("bearer ")


async def test_apns_message_is_a_mutable_alert_on_the_app_topic(
    apns: FakeApns, tls: LocalTls
) -> None:
    sender = apns_sender(apns, tls)
    try:
        outcome = await sender.send(device_token(), MESSAGE)
    finally:
        await sender.close()
    assert outcome.kind is OutcomeKind.SENT
    (push,) = apns.pushes
    assert push.headers["apns-topic"] == "org.parley.app"
    assert push.headers["apns-push-type"] == "alert"
    assert push.body["aps"] == {"alert": {"title": "New message"}, "mutable-content": 1}
    assert push.body["parley"] == MESSAGE.payload and push.body["kind"] == "message"


async def test_the_local_apns_refuses_http1(apns: FakeApns, tls: LocalTls) -> None:
    """The check the HTTP/2 assertions rely on: an HTTP/1.1 request is refused."""
    http1 = ssl.create_default_context(cafile=str(tls.ca_file))
    async with aiohttp.ClientSession() as http:  # HTTP/1.1 only
        url = f"{apns.url}/3/device/{device_token()}"
        async with http.post(url, data=b"{}", ssl=http1) as response:
            status = response.status
    assert status == 400 and apns.http1_requests == 1
    assert apns.pushes == []


async def test_apns_provider_token_is_reused_and_renewed_when_expired(
    apns: FakeApns, tls: LocalTls
) -> None:
    sender = apns_sender(apns, tls)
    try:
        first = await asyncio.gather(*(sender.send(device_token(), CALL) for _ in range(50)))
        assert len(apns.provider_tokens) == 1 and sender.tokens.made == 1
        apns.expire_provider_tokens()  # APNs answers 403 ExpiredProviderToken
        second = await asyncio.gather(*(sender.send(device_token(), MESSAGE) for _ in range(20)))
    finally:
        await sender.close()
    assert {o.kind for o in first + second} == {OutcomeKind.SENT}
    assert len(apns.pushes) == 70
    assert apns.auth_failures >= 1  # the expired token was refused, at least once
    assert sender.tokens.made == 2 and len(apns.provider_tokens) == 2
    assert set(apns.http_versions) == {"2"}


async def test_apns_sends_survive_the_provider_closing_connections(tls: LocalTls) -> None:
    """APNs and Google close HTTP/2 connections now and then (GOAWAY, idle ones reaped):
    the request that meets the closed connection is sent again on a new one."""
    async with FakeApns(tls, requests_per_connection=10) as apns:
        sender = apns_sender(apns, tls)
        try:
            one_by_one = [await sender.send(device_token(), CALL) for _ in range(30)]
            batches = []
            for _ in range(4):
                batches += await asyncio.gather(
                    *(sender.send(device_token(), MESSAGE) for _ in range(5))
                )
        finally:
            await sender.close()
    assert {o.kind for o in one_by_one + batches} == {OutcomeKind.SENT}
    assert len({push.token for push in apns.pushes}) == 50  # every one arrived
    # The local server may take requests that meet its limit and close without answering
    # them (its GOAWAY names those streams as taken): each is sent again once, on a new
    # connection, so a push may arrive twice, never more. A device tells a repeat by the
    # call or message id in the payload.
    counts = collections.Counter(push.token for push in apns.pushes)
    assert max(counts.values()) <= 2
    assert len(apns.connections) >= 5  # the fake did close them


async def test_apns_dead_tokens(apns: FakeApns, tls: LocalTls) -> None:
    gone = device_token()
    apns.mark_dead(gone)
    sender = apns_sender(apns, tls)
    try:
        unregistered = await sender.send(gone, CALL)
        short = await sender.send("abcdef", CALL)  # hexadecimal, but no device token
        garbage = await sender.send("../../admin", CALL)
    finally:
        await sender.close()
    assert (unregistered.kind, unregistered.status, unregistered.reason) == (
        OutcomeKind.DEAD_TOKEN,
        410,
        "Unregistered",
    )
    assert (short.kind, short.status, short.reason) == (
        OutcomeKind.DEAD_TOKEN,
        400,
        "BadDeviceToken",
    )
    assert garbage.kind is OutcomeKind.DEAD_TOKEN and garbage.status == 0
    assert apns.requests == 2 and apns.pushes == []


async def test_apns_outage_is_retried(apns: FakeApns, tls: LocalTls) -> None:
    sender = apns_sender(apns, tls)
    try:
        apns.start_outage(retry_after=2.5)
        down = await sender.send(device_token(), CALL)
        apns.end_outage()
        back = await sender.send(device_token(), CALL)
    finally:
        await sender.close()
    assert (down.kind, down.status, down.retry_after) == (OutcomeKind.RETRY, 503, 2.5)
    assert down.reason == "ServiceUnavailable"
    assert back.kind is OutcomeKind.SENT


async def test_apns_wrong_key_or_topic_fails(apns: FakeApns, tls: LocalTls) -> None:
    trusted = apns.new_key()
    wrong_key = apns_sender(apns, tls, trusted.with_other_key())
    wrong_topic = apns_sender(apns, tls, trusted, topic="org.other.app")
    try:
        refused = await wrong_key.send(device_token(), CALL)
        disallowed = await wrong_topic.send(device_token(), MESSAGE)
    finally:
        await wrong_key.close()
        await wrong_topic.close()
    assert (refused.kind, refused.status, refused.reason) == (
        OutcomeKind.FAILED,
        403,
        "InvalidProviderToken",
    )
    assert (disallowed.kind, disallowed.status, disallowed.reason) == (
        OutcomeKind.FAILED,
        400,
        "TopicDisallowed",
    )
    assert apns.auth_failures == 1 and apns.pushes == []


async def test_the_local_apns_checks_a_remembered_provider_token_again(
    apns: FakeApns, tls: LocalTls
) -> None:
    """The fake verifies a token's signature once, yet a token it took before is still
    refused once its key is no longer trusted, or once it is too old."""
    key = apns.new_key()
    iat = int(time.time()) - 3600 + 2  # too old in 2 s
    token = jwt.encode(
        {"iss": key.team_id, "iat": iat},
        key.private_key_pem,
        algorithm="ES256",
        headers={"kid": key.key_id},
    )
    client = H2Client(tls.ca_file)

    async def send() -> tuple[int, str]:
        answer = await client.post(
            f"{apns.url}/3/device/{device_token()}",
            content=b'{"aps": {}}',
            headers={
                "authorization": f"bearer {token}",
                "apns-push-type": "alert",
                "apns-topic": apns.topic,
            },
        )
        return answer.status_code, answer.json()["reason"] if answer.content else ""

    try:
        assert await send() == (200, "")
        assert await send() == (200, "")
        public_key = apns.keys.pop(key.key_id)
        assert await send() == (403, "InvalidProviderToken")
        apns.keys[key.key_id] = public_key
        assert await send() == (200, "")
        await asyncio.sleep(max(0.0, iat + 3600 + 0.1 - time.time()))
        assert await send() == (403, "ExpiredProviderToken")
    finally:
        await client.aclose()
    assert len(apns.pushes) == 3 and apns.auth_failures == 2


async def test_h2_requests_beyond_the_connections_window_wait_for_it(
    apns: FakeApns, tls: LocalTls
) -> None:
    """Sixty pushes of 3,000 bytes at once on an open connection: more than its 64 KiB
    flow-control window. Those beyond it wait until the server reads the others; none fails."""
    key = apns.new_key()
    token = jwt.encode(
        {"iss": key.team_id, "iat": int(time.time())},
        key.private_key_pem,
        algorithm="ES256",
        headers={"kid": key.key_id},
    )
    client = H2Client(tls.ca_file)
    body = json.dumps({"aps": {}, "pad": "x" * 2970}).encode()
    assert 2990 <= len(body) <= 3000
    headers = {
        "authorization": f"bearer {token}",
        "apns-push-type": "alert",
        "apns-topic": apns.topic,
    }

    async def send() -> int:
        url = f"{apns.url}/3/device/{device_token()}"
        return (await client.post(url, content=body, headers=headers)).status_code

    try:
        assert await send() == 200  # the connection is open: the sixty go out at once
        assert await asyncio.gather(*(send() for _ in range(60))) == [200] * 60
    finally:
        await client.aclose()
    assert len(apns.pushes) == 61


# Web Push


@pytest_asyncio.fixture
async def web_push(tls: LocalTls) -> AsyncIterator[FakeWebPush]:
    async with FakeWebPush(tls) as server:
        yield server


@pytest.fixture(scope="module")
def vapid() -> VapidKeyPair:
    return vapid_key_pair()


def web_push_sender(tls: LocalTls, vapid: VapidKeyPair, *, raw: bool = False) -> WebPushSender:
    key = vapid.private_key_raw if raw else vapid.private_key_pem
    credentials = WebPushCredentials.from_vapid(key, "mailto:push@parley.example")
    return WebPushSender(credentials, ca_file=tls.ca_file)


async def test_web_push_arrives_encrypted_and_decrypts(
    web_push: FakeWebPush, tls: LocalTls, vapid: VapidKeyPair
) -> None:
    token = web_push.subscribe(vapid.public_key)
    sender = web_push_sender(tls, vapid)
    try:
        call = await sender.send(token, CALL)
        message = await sender.send(token, MESSAGE)
    finally:
        await sender.close()
    assert call.kind is OutcomeKind.SENT and call.status == 201
    assert call.reason.startswith(f"{web_push.url}/message/")
    assert message.kind is OutcomeKind.SENT
    first, second = web_push.pushes
    # The service decrypted each body with the subscription's keys (http_ece).
    assert first.body == {"parley": CALL.payload, "kind": "call"}
    assert (first.token, first.kind, first.payload) == (token, "call", CALL.payload)
    assert second.payload == MESSAGE.payload and second.kind == "message"
    assert first.headers["content-encoding"] == "aes128gcm"
    assert first.headers["content-type"] == "application/octet-stream"
    assert (first.headers["ttl"], first.headers["urgency"], first.headers["topic"]) == (
        "30",
        "high",
        "call-7",
    )
    assert (second.headers["ttl"], second.headers["urgency"]) == ("3600", "normal")
    assert CALL.payload.encode() not in json.dumps(first.headers).encode()


async def test_web_push_vapid_names_the_origin_and_is_reused(
    web_push: FakeWebPush, tls: LocalTls, vapid: VapidKeyPair
) -> None:
    tokens = [web_push.subscribe(vapid.public_key) for _ in range(3)]
    sender = web_push_sender(tls, vapid, raw=True)  # the raw scalar works like the PEM
    long_id = str(uuid.uuid4()) + "-and-more"
    try:
        outcomes = [
            await sender.send(token, Notification("message", "p", long_id, 60)) for token in tokens
        ]
    finally:
        await sender.close()
    assert {o.kind for o in outcomes} == {OutcomeKind.SENT}
    authorizations = {push.headers["authorization"] for push in web_push.pushes}
    assert len(authorizations) == 1
    (authorization,) = authorizations
    assert f"k={vapid.public_key}" in authorization
    jwt_text = authorization.split("t=", 1)[1].split(",", 1)[0]
    claims = jwt.decode(jwt_text, options={"verify_signature": False})
    assert claims["aud"] == web_push.url and claims["sub"] == "mailto:push@parley.example"
    assert time.time() + 11 * 3600 < claims["exp"] <= time.time() + 12 * 3600
    topics = {push.headers["topic"] for push in web_push.pushes}
    assert len(topics) == 1 and len(next(iter(topics))) == 32  # hashed, the same each time


async def test_web_push_gone_and_malformed_subscriptions_are_dead(
    web_push: FakeWebPush, tls: LocalTls, vapid: VapidKeyPair
) -> None:
    token = web_push.subscribe(vapid.public_key)
    web_push.mark_dead(token)
    sender = web_push_sender(tls, vapid)
    try:
        gone = await sender.send(token, CALL)
        malformed = await sender.send('{"endpoint": "https://push.example/x"}', CALL)
    finally:
        await sender.close()
    assert gone.kind is OutcomeKind.DEAD_TOKEN and gone.status == 410
    assert malformed.kind is OutcomeKind.DEAD_TOKEN and malformed.status == 0
    assert "keys" in malformed.reason
    assert web_push.requests == 1


async def test_web_push_outage_is_retried(
    web_push: FakeWebPush, tls: LocalTls, vapid: VapidKeyPair
) -> None:
    token = web_push.subscribe(vapid.public_key)
    sender = web_push_sender(tls, vapid)
    try:
        web_push.start_outage(retry_after=30, status=429)
        slow_down = await sender.send(token, CALL)
        web_push.end_outage()
        back = await sender.send(token, CALL)
    finally:
        await sender.close()
    assert (slow_down.kind, slow_down.status, slow_down.retry_after) == (
        OutcomeKind.RETRY,
        429,
        30.0,
    )
    assert back.kind is OutcomeKind.SENT and len(web_push.pushes) == 1


async def test_web_push_with_another_vapid_key_fails(
    web_push: FakeWebPush, tls: LocalTls, vapid: VapidKeyPair
) -> None:
    token = web_push.subscribe(vapid.public_key)
    sender = web_push_sender(tls, vapid_key_pair())
    try:
        outcome = await sender.send(token, CALL)
    finally:
        await sender.close()
    assert outcome.kind is OutcomeKind.FAILED and outcome.status == 403
    assert web_push.auth_failures == 2  # refused, VAPID made again, refused again
    assert web_push.pushes == []


async def test_the_local_web_push_checks_a_remembered_vapid_token_again(
    web_push: FakeWebPush, tls: LocalTls, vapid: VapidKeyPair
) -> None:
    """The fake verifies a VAPID token's signature once, yet refuses it once expired."""
    token = web_push.subscribe(vapid.public_key)
    endpoint = json.loads(token)["endpoint"]
    exp = int(time.time()) + 2
    vapid_jwt = jwt.encode(
        {"aud": web_push.url, "exp": exp, "sub": "mailto:push@parley.example"},
        vapid.private_key_pem,
        algorithm="ES256",
    )
    headers = {
        "authorization": f"vapid t={vapid_jwt}, k={vapid.public_key}",
        "content-encoding": "aes128gcm",
        "ttl": "60",
    }
    trusted = ssl.create_default_context(cafile=str(tls.ca_file))
    async with aiohttp.ClientSession() as http:

        async def send() -> tuple[int, str]:
            async with http.post(
                endpoint, data=b"not encrypted", headers=headers, ssl=trusted
            ) as r:
                return r.status, (await r.read()).decode()

        first, again = await send(), await send()
        await asyncio.sleep(max(0.0, exp + 0.1 - time.time()))
        expired = await send()
    # VAPID passed twice (then the body failed to decrypt); expired, it no longer does.
    assert first[0] == again[0] == 400 and first[1].startswith("cannot decrypt")
    assert expired == (403, "bad VAPID token: Signature has expired")
    assert web_push.auth_failures == 1


async def test_web_push_too_large_a_payload_fails_before_sending(
    web_push: FakeWebPush, tls: LocalTls, vapid: VapidKeyPair, tmp_path: Path
) -> None:
    token = web_push.subscribe(vapid.public_key)
    sender = web_push_sender(tls, vapid)
    try:
        outcome = await sender.send(token, Notification("message", "x" * 4000, "m", 60))
    finally:
        await sender.close()
    assert outcome.kind is OutcomeKind.FAILED and "bytes" in outcome.reason
    assert web_push.requests == 0
