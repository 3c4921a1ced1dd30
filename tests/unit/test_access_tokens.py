"""The shared access-token rules: what auth signs and publishes, and how every verifier
checks it (with an injected time)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from parley_auth.keys import public_jwk
from parley_gateway.tokens import TokenVerifier
from parley_protocol.clock import FakeClock, now_ms
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import access_tokens
from parley_service.access_tokens import Claims, parse_jwks, sign, verify

APP_KEY = "196087a1-e815-4bc4-8984-60d8d8a43f1d"
# RFC 8037, appendix A.1-A.3: an Ed25519 key and its RFC 7638 thumbprint.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
KID = "k1"
NOW = 1_700_000_000


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_b64url_decode(RFC8037_D))


def jwk(kid: str, key: Ed25519PrivateKey) -> dict[str, str]:
    x = _b64url(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}


def claims(now: int = NOW, ttl: int = 900, env: str = "sandbox") -> Claims:
    return Claims(
        application_key=APP_KEY,
        user_id="alice",
        instance_id="iid-1",
        environment=env,
        issued_at=now,
        expires_at=now + ttl,
    )


KEY = Ed25519PrivateKey.generate()
KEYS = parse_jwks(json.dumps({"keys": [jwk(KID, KEY)]}))


def encode(payload: dict[str, Any], kid: str = KID, key: Ed25519PrivateKey = KEY) -> str:
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid})


def refused(token: str, now_ms: int = (NOW + 100) * 1000, **kw: Any) -> ParleyError:
    with pytest.raises(ParleyError) as info:
        verify(token, KEYS.get, now_ms, **kw)
    assert info.value.field == "access_token"
    return info.value


def test_token_carries_the_contract_claims_and_verifies_against_auths_jwks() -> None:
    key = rfc_key()
    jwks = {"keys": [public_jwk(key)]}
    token = sign(claims(), RFC8037_THUMBPRINT, key)
    assert jwt.get_unverified_header(token) == {
        "alg": "EdDSA",
        "kid": RFC8037_THUMBPRINT,
        "typ": "JWT",
    }
    raw = jwt.decode(token, options={"verify_signature": False})
    assert raw == {
        "iss": "parley-auth",
        "aud": "parley",
        "sub": "alice",
        "app": APP_KEY,
        "env": "sandbox",
        "iid": "iid-1",
        "iat": 1_700_000_000,
        "exp": 1_700_000_900,
    }
    assert verify(token, parse_jwks(json.dumps(jwks)).get, now_ms=1_700_000_899_999) == claims()
    assert claims().expires_at_ms == 1_700_000_900_000


def test_verification_refuses_expired_unknown_key_tampered_and_foreign_tokens() -> None:
    key = rfc_key()
    jwks = {"keys": [public_jwk(key)]}
    token = sign(claims(), RFC8037_THUMBPRINT, key)

    def refused(tok: str, now: float = 1_700_000_100, keys: Any = jwks) -> ParleyError:
        with pytest.raises(ParleyError) as info:
            verify(tok, parse_jwks(json.dumps(keys)).get, now_ms=int(now * 1000))
        assert info.value.field == "access_token"
        return info.value

    err = refused(token, now=1_700_000_900)
    assert err.code == ErrorCode.ERROR_CODE_TOKEN_EXPIRED and "expired" in err.reason

    other = Ed25519PrivateKey.generate()
    err = refused(token, keys={"keys": [public_jwk(other)]})
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "unknown key" in err.reason

    forged = sign(claims(), RFC8037_THUMBPRINT, other)  # right kid, wrong key
    err = refused(forged)
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "not valid" in err.reason
    assert "signature" in err.reason

    header, payload, sig = token.split(".")
    body = json.loads(_b64url_decode(payload))
    body["sub"] = "mallory"
    evil = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    err = refused(f"{header}.{evil}.{sig}")
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED

    hs256 = jwt.encode({"sub": "alice"}, "x" * 32, algorithm="HS256")
    assert "not EdDSA" in refused(hs256).reason
    assert "not a JWT" in refused("garbage").reason

    wrong_audience = jwt.encode(
        {**claims().to_jwt_claims(), "aud": "elsewhere"},
        key,
        algorithm="EdDSA",
        headers={"kid": RFC8037_THUMBPRINT},
    )
    assert "not valid" in refused(wrong_audience).reason


def test_expiry_is_checked_against_the_given_time_to_the_millisecond() -> None:
    token = sign(claims(), KID, KEY)
    assert verify(token, KEYS.get, (NOW + 900) * 1000 - 1).user_id == "alice"
    err = refused(token, now_ms=(NOW + 900) * 1000)
    assert err.code == ErrorCode.ERROR_CODE_TOKEN_EXPIRED and "expired" in err.reason


def test_a_verified_digest_spares_only_that_tokens_signature_check() -> None:
    """A token whose digest the caller already verified is not checked for its signature
    (a forged signature shows it: its own digest passes), but every other rule holds; a
    digest of another token spares nothing."""
    token = sign(claims(), KID, KEY)
    digest = access_tokens.digest(token)
    assert len(digest) == access_tokens.DIGEST_BYTES == 16
    assert digest == access_tokens.digest(token) != access_tokens.digest(token + "x")
    forged = sign(claims(), KID, Ed25519PrivateKey.generate())  # right kid, wrong key
    assert verify(forged, KEYS.get, NOW * 1000, verified_digest=access_tokens.digest(forged))
    err = refused(forged, verified_digest=digest)  # the digest of another token
    assert "signature" in err.reason
    # Expiry, environment and the key still being trusted are checked all the same.
    err = refused(token, now_ms=(NOW + 900) * 1000, verified_digest=digest)
    assert err.code == ErrorCode.ERROR_CODE_TOKEN_EXPIRED
    err = refused(token, environment="production", verified_digest=digest)
    assert err.code == ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT
    with pytest.raises(ParleyError, match="unknown key"):
        verify(token, {}.get, NOW * 1000, verified_digest=digest)


def test_the_environment_is_checked_only_when_given() -> None:
    token = sign(claims(env="production"), KID, KEY)
    assert verify(token, KEYS.get, NOW * 1000).environment == "production"
    assert verify(token, KEYS.get, NOW * 1000, environment="production").user_id == "alice"
    err = refused(token, environment="sandbox")
    assert err.code == ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT
    assert "production" in err.reason and "sandbox" in err.reason


def test_tokens_without_a_usable_header_are_unauthenticated() -> None:
    unsigned = jwt.encode({"sub": "alice"}, "", algorithm="none", headers={"kid": KID})
    assert refused(unsigned).code == ErrorCode.ERROR_CODE_UNAUTHENTICATED
    hs256 = jwt.encode({"sub": "alice"}, "x" * 32, algorithm="HS256", headers={"kid": KID})
    assert refused(hs256).code == ErrorCode.ERROR_CODE_UNAUTHENTICATED
    assert refused("a.b.c").code == ErrorCode.ERROR_CODE_UNAUTHENTICATED
    assert "no access token" in refused("").reason
    no_kid = jwt.encode(claims().to_jwt_claims(), KEY, algorithm="EdDSA")
    assert "key id" in refused(no_kid).reason


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"aud": "elsewhere"}, "audience"),
        ({"iss": "mallory"}, "issuer"),
        ({"sub": None}, "'sub'"),
        ({"app": None}, "'app'"),
        ({"env": None}, "'env'"),
        ({"iid": None}, "'iid'"),
        ({"iat": None}, "'iat'"),  # auth always required it; now every verifier does
        ({"exp": None}, "'exp'"),
        ({"aud": None}, "'aud'"),
        ({"iss": None}, "'iss'"),
        ({"iid": ""}, "'iid'"),
        ({"app": 7}, "'app'"),
        ({"sub": 7}, "'sub'"),  # claim types are checked, never coerced with str()
        ({"env": ["sandbox"]}, "'env'"),
        ({"exp": float(NOW + 900)}, "'exp'"),  # auth signs whole seconds
        ({"exp": str(NOW + 900)}, "'exp'"),
        ({"exp": True}, "'exp'"),
        ({"iat": "yesterday"}, "'iat'"),
    ],
)
def test_missing_or_mistyped_claims_are_unauthenticated(
    overrides: dict[str, Any], words: str
) -> None:
    payload = {**claims().to_jwt_claims(), **overrides}
    err = refused(encode({k: v for k, v in payload.items() if v is not None}))
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED
    assert words in err.reason
    if words in ("audience", "issuer"):
        assert "not valid" in err.reason


def test_parse_jwks_keeps_ed25519_keys_and_skips_others() -> None:
    good = jwk("k1", Ed25519PrivateKey.generate())
    document = {"keys": [good, {"kty": "RSA", "kid": "r1"}, "junk", {**good, "kid": 5}]}
    assert list(parse_jwks(json.dumps(document))) == ["k1"]
    for bad in ("not json", "[]", '{"keys": 1}'):
        with pytest.raises(ValueError):
            parse_jwks(bad)


def test_key_id_reads_only_the_header() -> None:
    assert access_tokens.key_id(sign(claims(), "some-kid", KEY)) == "some-kid"
    with pytest.raises(ParleyError):
        access_tokens.key_id("garbage")


# Auth and the gateway: one set of rules -----------------------------------------------------

AUTH_KEY = Ed25519PrivateKey.generate()
AUTH_KID = public_jwk(AUTH_KEY)["kid"]
AUTH_JWKS = json.dumps({"keys": [public_jwk(AUTH_KEY)]})


def _signed(payload_overrides: dict[str, Any], key: Ed25519PrivateKey = AUTH_KEY) -> str:
    payload = {**claims().to_jwt_claims(), **payload_overrides}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": AUTH_KID})


def _tampered() -> str:
    header, payload, sig = sign(claims(), AUTH_KID, AUTH_KEY).split(".")
    body = {**json.loads(_b64url_decode(payload)), "sub": "mallory"}
    return f"{header}.{_b64url(json.dumps(body).encode())}.{sig}"


OTHER_KEY = Ed25519PrivateKey.generate()
CASES: dict[str, str] = {
    "good": sign(claims(), AUTH_KID, AUTH_KEY),
    "expired": sign(claims(now=NOW - 900), AUTH_KID, AUTH_KEY),
    "other environment": sign(claims(env="production"), AUTH_KID, AUTH_KEY),
    "forged": sign(claims(), AUTH_KID, OTHER_KEY),
    "unknown key": sign(claims(), public_jwk(OTHER_KEY)["kid"], OTHER_KEY),
    "tampered": _tampered(),
    "no iat": _signed({"iat": None}),
    "fractional exp": _signed({"exp": NOW + 900.5}),
    "numeric sub": _signed({"sub": 42}),
    "empty iid": _signed({"iid": ""}),
    "other audience": _signed({"aud": "elsewhere"}),
    "other issuer": _signed({"iss": "mallory"}),
    "HS256": jwt.encode(claims().to_jwt_claims(), "x" * 32, "HS256", {"kid": AUTH_KID}),
    "unsigned": jwt.encode(claims().to_jwt_claims(), "", "none", {"kid": AUTH_KID}),
    "no kid": jwt.encode(claims().to_jwt_claims(), AUTH_KEY, "EdDSA"),
    "garbage": "garbage",
    "empty": "",
}


def _outcome_of(check: Callable[[], Claims]) -> Claims | tuple[int, str, str]:
    try:
        return check()
    except ParleyError as err:
        return (err.code, err.reason, err.field)


@pytest.mark.parametrize("name", list(CASES))
async def test_auth_and_the_gateway_accept_and_refuse_the_same_tokens_alike(name: str) -> None:
    token = CASES[name]
    clock = FakeClock(start=NOW + 100)

    # What auth publishes, read the way its tests and any service without a cache read it.
    by_lib = _outcome_of(
        lambda: verify(token, parse_jwks(AUTH_JWKS).get, now_ms(clock), environment="sandbox")
    )

    async def fetch() -> str:
        return AUTH_JWKS

    gateway = TokenVerifier(fetch, clock, "sandbox", refetch_seconds=5, max_age_seconds=300)
    try:
        by_gateway: Claims | tuple[int, str, str] = await gateway.verify(token)
    except ParleyError as err:
        by_gateway = (err.code, err.reason, err.field)

    assert by_gateway == by_lib
    if name == "good":
        assert by_lib == claims()
    else:
        assert isinstance(by_lib, tuple) and by_lib[2] == "access_token"
        expected = {
            "expired": ErrorCode.ERROR_CODE_TOKEN_EXPIRED,
            "other environment": ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT,
        }.get(name, ErrorCode.ERROR_CODE_UNAUTHENTICATED)
        assert by_lib[0] == expected, by_lib
