"""Registration signatures, JWK thumbprints, and access-token signing and verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from parley_auth.keys import public_jwk
from parley_auth.tokens import TokenClaims, sign_token, verify_token
from parley_protocol import signatures
from parley_protocol.errors import ErrorCode, ParleyError

APP_KEY = "196087a1-e815-4bc4-8984-60d8d8a43f1d"
APP_SECRET = "oYdgGRXoxEuJhGDY2KQ/HQ=="

# RFC 8037, appendix A.1-A.3: an Ed25519 key and its RFC 7638 thumbprint.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_b64url_decode(RFC8037_D))


def claims(now: int = 1_700_000_000, ttl: int = 900) -> TokenClaims:
    return TokenClaims("alice", APP_KEY, "sandbox", "iid-1", now, now + ttl)


def test_app_server_signature_is_the_guides_formula() -> None:
    expected = base64.b64encode(
        hashlib.sha1(f"alice{APP_KEY}7{APP_SECRET}".encode()).digest()
    ).decode()
    assert signatures.registration_signature("alice", APP_KEY, 7, APP_SECRET) == expected
    assert signatures.registration_signature("alice", APP_KEY, 8, APP_SECRET) != expected
    assert "\n" not in expected


def test_self_signed_signature_is_hmac_sha256_over_key_user_and_time() -> None:
    message = f"parley-register\n{APP_KEY}\nalice\n1700000000000".encode()
    expected = base64.b64encode(
        hmac.new(APP_SECRET.encode(), message, hashlib.sha256).digest()
    ).decode()
    got = signatures.self_signed_registration("alice", APP_KEY, 1_700_000_000_000, APP_SECRET)
    assert got == expected
    assert signatures.signatures_equal(got, expected)
    assert not signatures.signatures_equal(got, expected[:-2] + "AA")


def test_public_jwk_matches_rfc8037_and_its_kid_is_the_rfc7638_thumbprint() -> None:
    jwk = public_jwk(rfc_key())
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": RFC8037_X,
        "kid": RFC8037_THUMBPRINT,
        "alg": "EdDSA",
        "use": "sig",
    }


def test_token_carries_the_contract_claims_and_verifies_against_the_jwks() -> None:
    key = rfc_key()
    jwks = {"keys": [public_jwk(key)]}
    token = sign_token(claims(), RFC8037_THUMBPRINT, key)
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
    assert verify_token(token, json.dumps(jwks), now=1_700_000_899) == claims()


def test_verification_refuses_expired_unknown_key_tampered_and_foreign_tokens() -> None:
    key = rfc_key()
    jwks = {"keys": [public_jwk(key)]}
    token = sign_token(claims(), RFC8037_THUMBPRINT, key)

    def refused(tok: str, now: float = 1_700_000_100, keys: Any = jwks) -> ParleyError:
        with pytest.raises(ParleyError) as info:
            verify_token(tok, keys, now=now)
        return info.value

    err = refused(token, now=1_700_000_900)
    assert err.code == ErrorCode.ERROR_CODE_TOKEN_EXPIRED and "expired" in err.reason

    other = Ed25519PrivateKey.generate()
    err = refused(token, keys={"keys": [public_jwk(other)]})
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "unknown key" in err.reason

    forged = sign_token(claims(), RFC8037_THUMBPRINT, other)  # right kid, wrong key
    err = refused(forged)
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "not valid" in err.reason

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
