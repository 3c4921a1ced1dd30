"""The pure parts of the push senders: credentials parsing, the JWTs each provider wants,
request building, the RFC 8291 encryption (a known answer and a round trip through an
independent implementation) and the reading of provider answers."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import hpack
import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from parley_push.providers import apns, fcm, web_push
from parley_push.providers.base import (
    Notification,
    OutcomeKind,
    b64url_decode,
    retry_after_seconds,
    short_id,
)
from parley_push.providers.h2_client import ALWAYS_NEW, H2Client, _PlainEncoder
from parley_push.providers.http import Answer, tls_context
from parley_push.providers.http1_client import Http1Client

CALL = Notification("call", "signed.call.payload", "call-1", 30)
MESSAGE = Notification("message", "signed.message.payload", "msg-1", 0)


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def response(status: int, body: object = None, headers: dict[str, str] | None = None) -> Answer:
    """A provider's answer as the senders get it (headers lower case, as on the wire)."""
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    if body is None:
        return Answer(status, lowered, b"")
    if isinstance(body, str):
        return Answer(status, lowered, body.encode())
    return Answer(
        status, {"content-type": "application/json", **lowered}, json.dumps(body).encode()
    )


# Shared


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    in_two_minutes = format_datetime(datetime.fromtimestamp(now + 120, UTC), usegmt=True)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(" 2.5 ") == 2.5
    assert retry_after_seconds(in_two_minutes, now=now) == pytest.approx(120.0)
    assert retry_after_seconds(in_two_minutes, now=now + 600) == 0.0  # already past
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("nan") is None


def test_short_ids_keep_short_url_safe_values_and_hash_the_rest() -> None:
    assert short_id("call-7", 32) == "call-7"
    long = "5b3c1f0e-0d43-4c0e-9a55-3f1b1f2f6a77"  # 36 characters
    hashed = short_id(long, 32)
    assert len(hashed) == 32 and hashed == short_id(long, 32) != short_id(long + "x", 32)
    assert all(c.isalnum() or c in "-_" for c in hashed)
    assert short_id("a b", 32) != "a b" and len(short_id("a b", 32)) == 32


async def test_provider_clients_need_an_existing_ca_file_and_bound_their_waits(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        tls_context(tmp_path / "missing.pem")
    for client in (Http1Client(), H2Client()):
        try:
            assert (client.connect_timeout, client.total_timeout) == (5.0, 10.0)
        finally:
            await client.aclose()


# FCM


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account(key: rsa.RSAPrivateKey, **changes: object) -> str:
    account: dict[str, object] = {
        "type": "service_account",
        "project_id": "parley-prod",
        "private_key_id": "k1d",
        "private_key": pem(key),
        "client_email": "push@parley-prod.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    account.update(changes)
    return json.dumps({k: v for k, v in account.items() if v is not None})


def test_a_service_account_is_read_with_its_key(rsa_key: rsa.RSAPrivateKey) -> None:
    credentials = fcm.FcmCredentials.from_service_account(service_account(rsa_key))
    assert credentials.project_id == "parley-prod"
    assert credentials.client_email == "push@parley-prod.iam.gserviceaccount.com"
    assert credentials.private_key_id == "k1d"
    assert credentials.token_uri == "https://oauth2.googleapis.com/token"
    assert credentials.endpoint == "https://fcm.googleapis.com"
    assert "PRIVATE" not in repr(credentials)


@pytest.mark.parametrize(
    ("text_changes", "reason"),
    [
        ({"private_key": None}, "no private_key"),
        ({"project_id": ""}, "no project_id"),
        ({"token_uri": None}, "no token_uri"),
        ({"token_uri": "ftp://x"}, "token_uri is not an http"),
        ({"client_email": "nobody"}, "not an email"),
        ({"type": "authorized_user"}, "not a service account"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}, "PEM"),
    ],
)
def test_a_bad_service_account_is_refused_with_its_reason(
    rsa_key: rsa.RSAPrivateKey, text_changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        fcm.FcmCredentials.from_service_account(service_account(rsa_key, **text_changes))


def test_a_service_account_needs_json_and_an_rsa_key(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="not JSON"):
        fcm.FcmCredentials.from_service_account("{nope")
    ec_key = pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError, match="not an RSA key"):
        fcm.FcmCredentials.from_service_account(service_account(rsa_key, private_key=ec_key))


def test_the_token_assertion_is_an_rs256_jwt_for_the_token_uri(rsa_key: rsa.RSAPrivateKey) -> None:
    credentials = fcm.FcmCredentials.from_service_account(service_account(rsa_key))
    assertion = fcm.service_account_assertion(credentials, rsa_key, 1_700_000_000.9)
    assert jwt.get_unverified_header(assertion) == {"alg": "RS256", "kid": "k1d", "typ": "JWT"}
    claims = jwt.decode(
        assertion,
        rsa_key.public_key(),
        algorithms=["RS256"],
        audience="https://oauth2.googleapis.com/token",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {
        "iss": "push@parley-prod.iam.gserviceaccount.com",
        "scope": "https://www.googleapis.com/auth/firebase.messaging",
        "aud": "https://oauth2.googleapis.com/token",
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
    }


def test_an_fcm_message_is_a_high_priority_data_message() -> None:
    assert fcm.message_body("tok", CALL) == {
        "message": {
            "token": "tok",
            "data": {"parley": "signed.call.payload", "kind": "call"},
            "android": {"priority": "high", "ttl": "30s", "collapse_key": "call-1"},
        }
    }
    assert fcm.message_body("tok", MESSAGE)["message"]["android"]["ttl"] == "0s"
    uncollapsed = fcm.message_body("tok", Notification("message", "p", "", 5))
    assert "collapse_key" not in uncollapsed["message"]["android"]


def fcm_error(status: int, word: str, message: str, *details: Mapping[str, object]) -> Answer:
    error: dict[str, object] = {"code": status, "status": word, "message": message}
    if details:
        error["details"] = list(details)
    return response(status, {"error": error})


FCM_UNREGISTERED = {
    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
    "errorCode": "UNREGISTERED",
}
TOKEN_VIOLATION = {
    "@type": "type.googleapis.com/google.rpc.BadRequest",
    "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}],
}


def test_fcm_answers_are_classified() -> None:
    sent = fcm.classify(response(200, {"name": "projects/p/messages/1"}))
    assert (sent.kind, sent.reason, sent.status) == (OutcomeKind.SENT, "projects/p/messages/1", 200)
    gone = fcm.classify(
        fcm_error(404, "NOT_FOUND", "Requested entity was not found.", FCM_UNREGISTERED)
    )
    assert gone.kind is OutcomeKind.DEAD_TOKEN and "UNREGISTERED" in gone.reason
    invalid = fcm.classify(fcm_error(400, "INVALID_ARGUMENT", "Invalid token", TOKEN_VIOLATION))
    assert invalid.kind is OutcomeKind.DEAD_TOKEN
    worded = fcm.classify(
        fcm_error(
            400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"
        )
    )
    assert worded.kind is OutcomeKind.DEAD_TOKEN
    other_field = fcm.classify(
        fcm_error(400, "INVALID_ARGUMENT", "Invalid value at 'message.android.ttl'")
    )
    assert other_field.kind is OutcomeKind.FAILED and other_field.status == 400
    not_found = fcm.classify(fcm_error(404, "NOT_FOUND", "No such project."))
    assert not_found.kind is OutcomeKind.FAILED  # no UNREGISTERED: not the token's fault
    mismatch = fcm.classify(fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch"))
    assert mismatch.kind is OutcomeKind.FAILED
    quota = fcm.classify(
        response(
            429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}, {"retry-after": "12"}
        )
    )
    assert (quota.kind, quota.retry_after, quota.status) == (OutcomeKind.RETRY, 12.0, 429)
    broken = fcm.classify(response(502, "<html>bad gateway</html>"))
    assert (broken.kind, broken.retry_after) == (OutcomeKind.RETRY, None)


# APNs


@pytest.fixture(scope="module")
def p8() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def apns_credentials(key: ec.EllipticCurvePrivateKey, **changes: str) -> apns.ApnsCredentials:
    values = {"team_id": "TEAM123456", "key_id": "KEY1234567", "topic": "org.parley.app"}
    values.update(changes)
    return apns.ApnsCredentials.from_p8(pem(key), **values)


def test_apns_credentials_are_checked(p8: ec.EllipticCurvePrivateKey) -> None:
    credentials = apns_credentials(p8)
    assert (credentials.team_id, credentials.key_id, credentials.topic) == (
        "TEAM123456",
        "KEY1234567",
        "org.parley.app",
    )
    assert credentials.endpoint == "https://api.push.apple.com"
    with pytest.raises(ValueError, match="team ID"):
        apns_credentials(p8, team_id="short")
    with pytest.raises(ValueError, match="key ID"):
        apns_credentials(p8, key_id="key1234567")  # lower case: not an Apple key ID
    with pytest.raises(ValueError, match="bundle ID"):
        apns_credentials(p8, topic="parley")
    with pytest.raises(ValueError, match=r"\.voip topic is derived"):
        apns_credentials(p8, topic="org.parley.app.voip")
    with pytest.raises(ValueError, match="https"):
        apns_credentials(p8, endpoint="http://api.push.apple.com")
    with pytest.raises(ValueError, match="P-256"):
        apns_credentials(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError, match="PEM"):
        apns.ApnsCredentials.from_p8(
            "not a key", team_id="TEAM123456", key_id="KEY1234567", topic="a.b"
        )


def test_the_provider_token_is_an_es256_jwt_of_the_team(p8: ec.EllipticCurvePrivateKey) -> None:
    token = apns.provider_token(apns_credentials(p8), p8, 1_700_000_000.5)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": "KEY1234567", "typ": "JWT"}
    claims = jwt.decode(token, p8.public_key(), algorithms=["ES256"], options={"verify_iat": False})
    assert claims == {"iss": "TEAM123456", "iat": 1_700_000_000}


def test_the_provider_token_is_reused_for_40_minutes(p8: ec.EllipticCurvePrivateKey) -> None:
    now = [1_700_000_000.0]
    tokens = apns.ProviderTokens(apns_credentials(p8), clock=lambda: now[0])
    first = tokens.current()
    now[0] += 39 * 60
    assert tokens.current() == first and tokens.made == 1
    now[0] += 60
    second = tokens.current()
    assert second != first and tokens.made == 2
    tokens.expired(first)  # an old refusal arriving late: the current one stays
    assert tokens.current() == second and tokens.made == 2
    tokens.expired(second)
    assert tokens.current() != second and tokens.made == 3


def test_apns_headers_and_bodies_for_calls_and_messages(p8: ec.EllipticCurvePrivateKey) -> None:
    credentials = apns_credentials(p8)
    call = apns.request_headers(credentials, CALL, "jwt", 1_700_000_000.7)
    assert call == {
        "authorization": "bearer jwt",
        "apns-topic": "org.parley.app.voip",
        "apns-push-type": "voip",
        "apns-priority": "10",
        "apns-expiration": "1700000030",
        "apns-collapse-id": "call-1",
        "content-type": "application/json",
    }
    message = apns.request_headers(credentials, MESSAGE, "jwt", 1_700_000_000.7)
    assert (message["apns-topic"], message["apns-push-type"]) == ("org.parley.app", "alert")
    assert message["apns-expiration"] == "0"  # ttl 0: now or never
    long_id = apns.request_headers(credentials, Notification("call", "p", "x" * 100, 5), "j", 0)
    assert len(long_id["apns-collapse-id"]) <= 64
    uncollapsed = apns.request_headers(credentials, Notification("call", "p", "", 5), "j", 0)
    assert "apns-collapse-id" not in uncollapsed
    assert apns.request_body(CALL) == {"aps": {}, "parley": "signed.call.payload", "kind": "call"}
    assert apns.request_body(MESSAGE)["aps"] == {
        "alert": {"title": "New message"},
        "mutable-content": 1,
    }


def test_apns_answers_are_classified() -> None:
    sent = apns.classify(response(200, headers={"apns-id": "A-1"}))
    assert (sent.kind, sent.reason) == (OutcomeKind.SENT, "A-1")
    for status, reason in (
        (410, "Unregistered"),
        (400, "BadDeviceToken"),
        (400, "DeviceTokenNotForTopic"),
    ):
        outcome = apns.classify(response(status, {"reason": reason}))
        assert (outcome.kind, outcome.reason, outcome.status) == (
            OutcomeKind.DEAD_TOKEN,
            reason,
            status,
        )
    for status, reason in (
        (400, "TopicDisallowed"),
        (403, "InvalidProviderToken"),
        (413, "PayloadTooLarge"),
    ):
        assert apns.classify(response(status, {"reason": reason})).kind is OutcomeKind.FAILED
    busy = apns.classify(response(429, {"reason": "TooManyRequests"}, {"retry-after": "3"}))
    assert (busy.kind, busy.retry_after) == (OutcomeKind.RETRY, 3.0)
    assert apns.classify(response(503, {"reason": "ServiceUnavailable"})).kind is OutcomeKind.RETRY


# Web Push: RFC 8291 Appendix A, the known answer.
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8w"
    "EqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)


def scalar_key(text: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(b64url_decode(text), "big"), ec.SECP256R1())


def test_web_push_encryption_gives_the_rfc_8291_example() -> None:
    body = web_push.encrypt(
        RFC_PLAINTEXT,
        b64url_decode(RFC_UA_PUBLIC),
        b64url_decode(RFC_AUTH),
        sender_key=scalar_key(RFC_AS_PRIVATE),
        salt=b64url_decode(RFC_SALT),
    )
    assert body == b64url_decode(RFC_BODY)


@pytest.mark.parametrize("size", [0, 1, 100, web_push.MAX_PLAINTEXT])
def test_web_push_encryption_round_trips_through_http_ece(size: int) -> None:
    browser = ec.generate_private_key(ec.SECP256R1())
    public = browser.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    auth = bytes(range(16))
    plaintext = bytes(i % 251 for i in range(size))
    body = web_push.encrypt(plaintext, public, auth)
    salt, rs, id_length = body[:16], *struct.unpack("!IB", body[16:21])
    assert (rs, id_length, len(body)) == (4096, 65, 86 + size + 1 + 16)
    assert len(body) <= 4096
    assert (
        http_ece.decrypt(body, private_key=browser, auth_secret=auth, version="aes128gcm")
        == plaintext
    )
    again = web_push.encrypt(plaintext, public, auth)
    assert again[:16] != salt and again[21:86] != body[21:86]  # fresh salt and sender key
    with pytest.raises(http_ece.ECEException):
        http_ece.decrypt(body, private_key=browser, auth_secret=bytes(16), version="aes128gcm")


def test_web_push_refuses_a_payload_larger_than_one_record() -> None:
    public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    with pytest.raises(ValueError, match="more than 3993"):
        web_push.encrypt(bytes(web_push.MAX_PLAINTEXT + 1), public, bytes(16))


def test_vapid_keys_are_read_as_pem_or_raw_scalar() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    raw = b64(key.private_numbers().private_value.to_bytes(32, "big"))
    from_pem = web_push.WebPushCredentials.from_vapid(pem(key), "mailto:ops@parley.example")
    from_raw = web_push.WebPushCredentials.from_vapid(raw, "https://parley.example/contact")
    expected = b64(
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )
    assert from_pem.public_key == from_raw.public_key == expected
    assert from_raw.private_key_pem == from_pem.private_key_pem
    assert "PRIVATE" not in repr(from_pem)
    with pytest.raises(ValueError, match="32 bytes"):
        web_push.WebPushCredentials.from_vapid(b64(bytes(31)), "mailto:a@b.c")
    with pytest.raises(ValueError, match="mailto: or https"):
        web_push.WebPushCredentials.from_vapid(raw, "ops@parley.example")
    with pytest.raises(ValueError, match="P-256"):
        web_push.WebPushCredentials.from_vapid(
            pem(rsa.generate_private_key(65537, 2048)), "mailto:a@b.c"
        )


def test_the_vapid_token_names_the_push_service_origin() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = web_push.vapid_token(key, "https://push.example:8443", "mailto:a@b.c", 1_900_000_000)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "typ": "JWT"}
    claims = jwt.decode(
        token, key.public_key(), algorithms=["ES256"], audience="https://push.example:8443"
    )
    assert claims == {
        "aud": "https://push.example:8443",
        "exp": 1_900_000_000,
        "sub": "mailto:a@b.c",
    }


def subscription(**changes: object) -> str:
    browser = ec.generate_private_key(ec.SECP256R1())
    value: dict[str, object] = {
        "endpoint": "https://push.example/wpush/v2/abc",
        "expirationTime": None,
        "keys": {
            "p256dh": b64(
                browser.public_key().public_bytes(
                    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
                )
            ),
            "auth": b64(bytes(16)),
        },
    }
    value.update(changes)
    return json.dumps(value)


def test_subscriptions_are_parsed_and_checked() -> None:
    parsed = web_push.parse_subscription(subscription())
    assert parsed.endpoint == "https://push.example/wpush/v2/abc"
    assert parsed.origin == "https://push.example" and len(parsed.p256dh) == 65
    assert parsed.auth == bytes(16)
    padded = json.loads(subscription())
    padded["keys"]["auth"] = base64.b64encode(bytes(16)).decode()  # standard, padded
    assert web_push.parse_subscription(json.dumps(padded)).auth == bytes(16)
    not_on_curve = b64(b"\x04" + bytes(64))
    cases = [
        ("[1]", "not a JSON object"),
        ("{", "not JSON"),
        (subscription(endpoint=None), "no endpoint"),
        (subscription(endpoint="http://push.example/x"), "not an https URL"),
        (subscription(keys=None), "no keys"),
        (subscription(keys={"p256dh": not_on_curve, "auth": b64(bytes(16))}), "p256dh"),
        (
            subscription(
                keys={"p256dh": json.loads(subscription())["keys"]["p256dh"], "auth": b64(bytes(8))}
            ),
            "8 bytes",
        ),
    ]
    for token, reason in cases:
        with pytest.raises(ValueError, match=reason):
            web_push.parse_subscription(token)


def test_web_push_answers_are_classified() -> None:
    created = web_push.classify(response(201, headers={"location": "https://push.example/m/1"}))
    assert (created.kind, created.reason) == (OutcomeKind.SENT, "https://push.example/m/1")
    assert web_push.classify(response(410, "gone")).kind is OutcomeKind.DEAD_TOKEN
    assert web_push.classify(response(404, "no such subscription")).kind is OutcomeKind.DEAD_TOKEN
    assert web_push.classify(response(413, "too big")).kind is OutcomeKind.FAILED
    assert web_push.classify(response(400, "bad")).kind is OutcomeKind.FAILED
    busy = web_push.classify(response(429, "slow down", {"retry-after": "60"}))
    assert (busy.kind, busy.retry_after, busy.status) == (OutcomeKind.RETRY, 60.0, 429)
    assert web_push.urgency(CALL) == "high" and web_push.urgency(MESSAGE) == "normal"


def test_h2_headers_that_change_with_each_push_are_never_indexed() -> None:
    """The APNs client sends :path, content-length and the per-push APNs headers as literals
    never indexed, so the HPACK table keeps what repeats and stops growing."""
    encoder = _PlainEncoder(ALWAYS_NEW | apns.ALWAYS_NEW)
    decoder = hpack.Decoder()
    sizes = []
    for i in range(50):
        block = encoder.encode(
            [
                (":method", "POST"),
                (":path", f"/3/device/{i:064x}"),
                ("content-length", str(100 + i)),
                ("apns-topic", "com.example.app"),
                ("apns-expiration", str(1_700_000_000 + i)),
                ("apns-collapse-id", f"call-{i}"),
            ]
        )
        decoded = decoder.decode(block)
        never = {h[0] for h in decoded if isinstance(h, hpack.NeverIndexedHeaderTuple)}
        assert never == {":path", "content-length", "apns-expiration", "apns-collapse-id"}
        assert dict(decoded)[":path"] == f"/3/device/{i:064x}"
        sizes.append(len(encoder.header_table.dynamic_entries))
    assert len(set(sizes)) == 1  # only the topic was added, by the first push
