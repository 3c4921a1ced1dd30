"""Registration signatures and JWK thumbprints (token rules: test_access_tokens.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from parley_auth.keys import public_jwk
from parley_protocol import signatures

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
