"""Access tokens: EdDSA (Ed25519) JWTs with a `kid` header, and their verification.

Claims: iss "parley-auth", aud "parley", sub = user id, app = application key,
env = environment, iid = device instance id, iat, exp.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from parley_protocol.errors import ErrorCode, ParleyError

ISSUER = "parley-auth"
AUDIENCE = "parley"
ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "app", "env", "iid", "iat", "exp")


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    application_key: str
    environment: str
    instance_id: str
    issued_at: int
    expires_at: int

    def to_jwt_claims(self) -> dict[str, Any]:
        return {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": self.user_id,
            "app": self.application_key,
            "env": self.environment,
            "iid": self.instance_id,
            "iat": self.issued_at,
            "exp": self.expires_at,
        }


def sign_token(claims: TokenClaims, kid: str, private_key: Ed25519PrivateKey) -> str:
    return jwt.encode(
        claims.to_jwt_claims(), private_key, algorithm=ALGORITHM, headers={"kid": kid}
    )


def verify_token(
    token: str, jwks: str | dict[str, Any], now: float, audience: str = AUDIENCE
) -> TokenClaims:
    """Check a token against a JWKS at time `now`; UNAUTHENTICATED or TOKEN_EXPIRED otherwise.

    Time comes from the caller (an injected clock), so expiry is checked here rather than
    by PyJWT against the system clock.
    """
    key_set = json.loads(jwks) if isinstance(jwks, str) else jwks
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _unauthenticated(f"access token is not a JWT ({exc})") from exc
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM:
        raise _unauthenticated(f"access token algorithm {header.get('alg')!r} is not EdDSA")
    jwk = next((k for k in key_set.get("keys", []) if k.get("kid") == kid), None)
    if jwk is None:
        raise _unauthenticated(f"access token was signed with unknown key {kid!r}")
    try:
        claims = jwt.decode(
            token,
            jwt.PyJWK(jwk, algorithm=ALGORITHM).key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError as exc:
        raise _unauthenticated(f"access token is not valid ({exc})") from exc
    missing = [name for name in REQUIRED_CLAIMS if name not in claims]
    if missing:
        raise _unauthenticated(f"access token lacks claims {', '.join(missing)}")
    result = TokenClaims(
        user_id=str(claims["sub"]),
        application_key=str(claims["app"]),
        environment=str(claims["env"]),
        instance_id=str(claims["iid"]),
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
    )
    if result.expires_at <= now:
        raise ParleyError(
            ErrorCode.ERROR_CODE_TOKEN_EXPIRED,
            f"access token expired {int(now - result.expires_at)} s ago; refresh it",
            "access_token",
        )
    return result


def _unauthenticated(reason: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, reason, "access_token")
