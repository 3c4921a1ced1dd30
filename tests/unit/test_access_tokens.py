"""The shared access-token rules: signing, the JWKS, and verification with an injected time."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import access_tokens
from parley_service.access_tokens import Claims, parse_jwks, sign, verify

APP_KEY = "196087a1-e815-4bc4-8984-60d8d8a43f1d"
KID = "k1"
NOW = 1_700_000_000


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


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


def test_a_signed_token_carries_the_contract_claims_and_verifies() -> None:
    token = sign(claims(), KID, KEY)
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": KID, "typ": "JWT"}
    assert jwt.decode(token, options={"verify_signature": False}) == {
        "iss": "parley-auth",
        "aud": "parley",
        "sub": "alice",
        "app": APP_KEY,
        "env": "sandbox",
        "iid": "iid-1",
        "iat": NOW,
        "exp": NOW + 900,
    }
    got = verify(token, KEYS.get, (NOW + 899) * 1000 + 999)
    assert got == claims()
    assert got.expires_at_ms == (NOW + 900) * 1000


def test_expiry_is_checked_against_the_given_time_to_the_millisecond() -> None:
    token = sign(claims(), KID, KEY)
    err = refused(token, now_ms=(NOW + 900) * 1000)
    assert err.code == ErrorCode.ERROR_CODE_TOKEN_EXPIRED and "expired" in err.reason
    assert verify(token, KEYS.get, NOW * 1000).user_id == "alice"


def test_the_environment_is_checked_only_when_given() -> None:
    token = sign(claims(env="production"), KID, KEY)
    assert verify(token, KEYS.get, NOW * 1000).environment == "production"
    assert verify(token, KEYS.get, NOW * 1000, environment="production").user_id == "alice"
    err = refused(token, environment="sandbox")
    assert err.code == ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT
    assert "production" in err.reason and "sandbox" in err.reason


def test_unknown_keys_forgeries_tampering_and_other_algorithms_are_unauthenticated() -> None:
    token = sign(claims(), KID, KEY)
    other = Ed25519PrivateKey.generate()

    with pytest.raises(ParleyError) as info:
        verify(token, parse_jwks(json.dumps({"keys": [jwk(KID + "x", other)]})).get, NOW * 1000)
    err = info.value
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "unknown key" in err.reason

    forged = sign(claims(), KID, other)  # right kid, wrong key
    err = refused(forged)
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED
    assert "not valid" in err.reason and "signature" in err.reason

    header, payload, sig = token.split(".")
    body = json.loads(_b64url_decode(payload))
    body["sub"] = "mallory"
    evil = _b64url(json.dumps(body).encode())
    assert refused(f"{header}.{evil}.{sig}").code == ErrorCode.ERROR_CODE_UNAUTHENTICATED

    hs256 = jwt.encode({"sub": "alice"}, "x" * 32, algorithm="HS256", headers={"kid": KID})
    err = refused(hs256)
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "not EdDSA" in err.reason
    unsigned = jwt.encode({"sub": "alice"}, "", algorithm="none", headers={"kid": KID})
    assert refused(unsigned).code == ErrorCode.ERROR_CODE_UNAUTHENTICATED
    assert "not a JWT" in refused("garbage").reason
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
