"""The gateway's access-token verifier, with real Ed25519 keys and an injected clock.

The token rules it applies are the shared ones (test_access_tokens.py); here: its keys.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from parley_gateway.tokens import TokenVerifier
from parley_protocol.clock import FakeClock
from parley_protocol.errors import ErrorCode, ParleyError

APP = "196087a1-e815-4bc4-8984-60d8d8a43f1d"


def _jwk(kid: str, key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}


class Auth:
    """Signs tokens and publishes its JWKS, counting how often the JWKS is fetched."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.keys = {"k1": Ed25519PrivateKey.generate()}
        self.fetches = 0

    async def fetch(self) -> str:
        self.fetches += 1
        return json.dumps({"keys": [_jwk(kid, key) for kid, key in self.keys.items()]})

    def token(self, kid: str = "k1", ttl: int = 900, **overrides: Any) -> str:
        now = int(self.clock.time())
        claims: dict[str, Any] = {
            "iss": "parley-auth",
            "aud": "parley",
            "sub": "alice",
            "app": APP,
            "env": "sandbox",
            "iid": "device-1",
            "iat": now,
            "exp": now + ttl,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.keys[kid], algorithm="EdDSA", headers={"kid": kid})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def auth(clock: FakeClock) -> Auth:
    return Auth(clock)


@pytest.fixture
def verifier(auth: Auth, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(auth.fetch, clock, "sandbox", refetch_seconds=5, max_age_seconds=300)


async def _refused(verifier: TokenVerifier, token: str) -> ParleyError:
    with pytest.raises(ParleyError) as info:
        await verifier.verify(token)
    return info.value


async def test_a_good_token_gives_its_claims(verifier: TokenVerifier, auth: Auth) -> None:
    claims = await verifier.verify(auth.token())
    assert (claims.application_key, claims.user_id, claims.instance_id) == (
        APP,
        "alice",
        "device-1",
    )
    assert claims.expires_at_ms == (int(auth.clock.time()) + 900) * 1000
    assert auth.fetches == 1  # fetched on first use, then cached
    await verifier.verify(auth.token())
    assert auth.fetches == 1


async def test_expiry_follows_the_injected_clock(
    verifier: TokenVerifier, auth: Auth, clock: FakeClock
) -> None:
    token = auth.token(ttl=60)
    await verifier.verify(token)
    clock.advance(60)
    err = await _refused(verifier, token)
    assert err.code == ErrorCode.ERROR_CODE_TOKEN_EXPIRED and err.field == "access_token"


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "mallory"}, "issuer"),
        ({"sub": None}, "sub"),
        ({"app": None}, "app"),
        ({"iid": ""}, "iid"),
        ({"exp": None}, "exp"),
    ],
)
async def test_tokens_with_bad_claims_are_unauthenticated(
    verifier: TokenVerifier, auth: Auth, overrides: dict[str, Any], words: str
) -> None:
    err = await _refused(verifier, auth.token(**overrides))
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED
    assert words in err.reason


async def test_a_token_of_the_other_environment_is_refused(
    verifier: TokenVerifier, auth: Auth
) -> None:
    err = await _refused(verifier, auth.token(env="production"))
    assert err.code == ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT


async def test_only_eddsa_is_accepted(verifier: TokenVerifier, auth: Auth) -> None:
    hs = jwt.encode({"sub": "alice"}, "s" * 32, algorithm="HS256", headers={"kid": "k1"})
    err = await _refused(verifier, hs)
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "EdDSA" in err.reason
    unsigned = jwt.encode({"sub": "alice"}, "", algorithm="none", headers={"kid": "k1"})
    assert (await _refused(verifier, unsigned)).code == ErrorCode.ERROR_CODE_UNAUTHENTICATED
    assert (await _refused(verifier, "")).code == ErrorCode.ERROR_CODE_UNAUTHENTICATED
    assert (await _refused(verifier, "a.b.c")).code == ErrorCode.ERROR_CODE_UNAUTHENTICATED


async def test_a_forged_signature_is_refused(verifier: TokenVerifier, auth: Auth) -> None:
    good = auth.token()
    auth.keys["k1"], real = Ed25519PrivateKey.generate(), auth.keys["k1"]
    forged = auth.token()
    auth.keys["k1"] = real
    await verifier.verify(good)
    err = await _refused(verifier, forged)
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "signature" in err.reason


async def test_an_unknown_kid_refetches_the_jwks_at_most_once_per_window(
    verifier: TokenVerifier, auth: Auth, clock: FakeClock
) -> None:
    await verifier.verify(auth.token())
    assert auth.fetches == 1
    # A rotation: the new key is found by one refetch.
    auth.keys["k2"] = Ed25519PrivateKey.generate()
    clock.advance(6)
    await verifier.verify(auth.token("k2"))
    assert auth.fetches == 2
    # Forged kids within the window cost no fetch at all: "not now" (a key newer than the
    # last fetch looks the same), never a pass.
    auth.keys["bogus"] = Ed25519PrivateKey.generate()
    token = auth.token("bogus")
    del auth.keys["bogus"]
    for _ in range(20):
        err = await _refused(verifier, token)
        assert err.code == ErrorCode.ERROR_CODE_UNAVAILABLE and "does not know yet" in err.reason
    assert auth.fetches == 2
    clock.advance(5)
    err = await _refused(verifier, token)
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "unknown key" in err.reason
    assert auth.fetches == 3


async def test_a_stale_jwks_is_refreshed_and_dropped_keys_stop_working(
    verifier: TokenVerifier, auth: Auth, clock: FakeClock
) -> None:
    auth.keys["k2"] = Ed25519PrivateKey.generate()
    old = auth.token("k2")
    await verifier.verify(old)
    del auth.keys["k2"]
    clock.advance(299)
    await verifier.refresh_if_stale()
    assert auth.fetches == 1
    clock.advance(1)
    await verifier.refresh_if_stale()
    assert auth.fetches == 2 and verifier.key_ids == {"k1"}
    clock.advance(10)
    assert (await _refused(verifier, old)).code == ErrorCode.ERROR_CODE_UNAUTHENTICATED


async def test_auth_down_at_first_use_is_unavailable(clock: FakeClock, auth: Auth) -> None:
    async def down() -> str:
        raise ParleyError(ErrorCode.ERROR_CODE_UNAVAILABLE, "no service answers")

    verifier = TokenVerifier(down, clock, "sandbox", refetch_seconds=5, max_age_seconds=300)
    err = await _refused(verifier, auth.token())
    assert err.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    with pytest.raises(ParleyError):
        await verifier.jwks_json()


async def test_auth_back_after_a_failed_start_is_used_at_once(clock: FakeClock, auth: Auth) -> None:
    up = False

    async def flaky() -> str:
        if not up:
            raise ParleyError(ErrorCode.ERROR_CODE_UNAVAILABLE, "no service answers")
        return await auth.fetch()

    verifier = TokenVerifier(flaky, clock, "sandbox", refetch_seconds=5, max_age_seconds=300)
    with pytest.raises(ParleyError):
        await verifier.refresh()  # at start, auth is not there yet
    up = True
    claims = await verifier.verify(auth.token())  # no wait for the refetch window
    assert claims.user_id == "alice"
