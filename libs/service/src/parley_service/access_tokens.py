"""Access tokens: the one definition of what auth signs and what every service accepts.

An access token is an EdDSA (Ed25519) JWT whose header names its signing key (`kid`).
Claims: iss "parley-auth", aud "parley", sub = user id, app = application key,
env = environment, iid = device instance id, iat and exp = whole seconds since the epoch.

Auth signs with `sign`; whoever verifies (the gateway, the tests of both) goes through
`verify`, the only place the rules are checked: the header (EdDSA, a key id), the
signature, issuer and audience, every claim present with its type, expiry against a time
the caller passes (an injected clock, never the system clock behind its back), and the
environment when the caller has one (the signature is spared only for a token whose
`digest` the caller says it already verified). A refusal is a `ParleyError` on the field
"access_token": UNAUTHENTICATED, TOKEN_EXPIRED or WRONG_ENVIRONMENT.

Where the keys come from is the caller's business: `parse_jwks` reads a published JWKS,
and `verify` asks a lookup for the key of the token's kid (a cache that may need a
refetch first calls `key_id` to learn which key, fetches, then verifies).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.logs import get_logger

log = get_logger("parley.access_tokens")

ISSUER: Final = "parley-auth"
AUDIENCE: Final = "parley"
ALGORITHM: Final = "EdDSA"
FIELD: Final = "access_token"
REQUIRED_CLAIMS: Final = ("iss", "aud", "sub", "app", "env", "iid", "iat", "exp")
_STRING_CLAIMS: Final = ("sub", "app", "iid", "env")
_TIME_CLAIMS: Final = ("iat", "exp")
DIGEST_BYTES: Final = 16

KeyLookup = Callable[[str], Ed25519PublicKey | None]
"""The public key of a key id, or None when the id is unknown (`dict.get` is one)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Claims:
    """What an access token says about its holder; times in whole seconds, as signed."""

    application_key: str
    user_id: str
    instance_id: str
    environment: str
    issued_at: int
    expires_at: int

    @property
    def expires_at_ms(self) -> int:
        """The expiry in milliseconds, as the protocol carries times."""
        return self.expires_at * 1000

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


def sign(claims: Claims, kid: str, private_key: Ed25519PrivateKey) -> str:
    """The signed token, its header naming `kid`."""
    return jwt.encode(
        claims.to_jwt_claims(), private_key, algorithm=ALGORITHM, headers={"kid": kid}
    )


def parse_jwks(text: str) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a JWKS document by key id; other keys are skipped.

    ValueError when the document is not a JSON object with a "keys" list.
    """
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"JWKS is not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('JWKS is not an object with a "keys" list')
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519" or not isinstance(kid, str):
            log.warning("jwks_key_skipped", kid=str(kid), kty=str(entry.get("kty")))
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=ALGORITHM).key
        except jwt.PyJWTError as exc:
            log.warning("jwks_key_unusable", kid=kid, error=str(exc))
            continue
        if isinstance(key, Ed25519PublicKey):
            keys[kid] = key
    return keys


def unauthenticated(reason: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, reason, FIELD)


def key_id(token: str) -> str:
    """The key id a token names, after checking it is a JWT signed with EdDSA.

    Only the header is read: nothing about the token is trusted yet.
    """
    if not token:
        raise unauthenticated("no access token was given")
    header = _unverified_header(token)
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise unauthenticated(f"access token is signed with {str(alg)[:32]!r}, not {ALGORITHM}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise unauthenticated("access token names no key id (kid)")
    return kid


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWT (three base64url segments), nothing trusted yet."""
    segments = token.split(".")
    if len(segments) != 3:
        raise unauthenticated(f"access token is not a JWT: {len(segments)} segments, not 3")
    try:
        header = json.loads(_b64url_decode(segments[0]))
    except ValueError as exc:  # bad base64url (binascii.Error) or bad JSON
        raise unauthenticated(
            f"access token is not a JWT: its header is unreadable ({exc})"
        ) from exc
    if not isinstance(header, dict):
        raise unauthenticated("access token is not a JWT: its header is not a JSON object")
    if "crit" in header or header.get("b64", True) is not True:
        raise unauthenticated("access token is not valid: it asks for JWS extensions")
    return header


# base64url to base64 ("+" and "/" become "-" and "_", which strict decoding refuses).
_FROM_URLSAFE = str.maketrans("-_+/", "+/-_")


def _b64url_decode(segment: str) -> bytes:
    """A base64url segment without padding, decoded strictly (ValueError when it is not)."""
    standard = segment.translate(_FROM_URLSAFE) + "=" * (-len(segment) % 4)
    try:
        return binascii.a2b_base64(standard.encode("ascii"), strict_mode=True)
    except UnicodeEncodeError as exc:
        raise ValueError("not ASCII") from exc


def digest(token: str) -> bytes:
    """A token's fingerprint: the first 16 bytes of its SHA-256 (what a verifier may keep
    to know the same token again without checking its signature twice)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()[:DIGEST_BYTES]


def verify(
    token: str,
    key_for_kid: KeyLookup,
    now_ms: int,
    environment: str | None = None,
    *,
    verified_digest: bytes = b"",
) -> Claims:
    """The token's claims if every rule holds at `now_ms`; a ParleyError otherwise.

    `environment`, when given, is the only one the token may be for. The compact JWS is
    checked here (PyJWT's decode validates each base64url character in Python and parsed
    the token three times per sign-in): signature first, then the payload's claims.
    `verified_digest`, when it is this token's `digest`, says the caller's side already
    checked this very token's signature: every other rule is checked again (its key must
    still be trusted, it must not have expired since), the signature is not.
    """
    kid = key_id(token)
    key = key_for_kid(kid)
    if key is None:
        raise unauthenticated(f"access token is signed with an unknown key ({kid[:64]!r})")
    header_segment, payload_segment, signature_segment = token.split(".")
    try:
        signature = _b64url_decode(signature_segment)
        payload_json = _b64url_decode(payload_segment)
    except ValueError as exc:
        raise unauthenticated(f"access token is not valid: unreadable base64url ({exc})") from exc
    if not (verified_digest and hmac.compare_digest(verified_digest, digest(token))):
        try:
            key.verify(signature, f"{header_segment}.{payload_segment}".encode("ascii"))
        except InvalidSignature as exc:
            raise unauthenticated("access token signature is not valid") from exc
    try:
        payload = json.loads(payload_json)
    except ValueError as exc:
        raise unauthenticated("access token is not valid: its payload is not JSON") from exc
    if not isinstance(payload, dict):
        raise unauthenticated("access token is not valid: its payload is not a JSON object")
    for name in REQUIRED_CLAIMS:
        if payload.get(name) is None:
            raise unauthenticated(f"access token lacks the {name!r} claim")
    if payload["iss"] != ISSUER:
        raise unauthenticated(f"access token is not valid: its issuer is not {ISSUER!r}")
    audience = payload["aud"]
    if audience != AUDIENCE and not (
        isinstance(audience, list)
        and all(isinstance(a, str) for a in audience)
        and AUDIENCE in audience
    ):
        raise unauthenticated(f"access token is not valid: its audience is not {AUDIENCE!r}")
    claims = _claims(payload)
    if claims.expires_at_ms <= now_ms:
        raise ParleyError(
            ErrorCode.ERROR_CODE_TOKEN_EXPIRED,
            "access token has expired; get a new one with the device credential",
            FIELD,
        )
    if environment is not None and claims.environment != environment:
        raise ParleyError(
            ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT,
            f"access token is for the {claims.environment[:32]} environment; this is "
            f"the {environment} environment",
            FIELD,
        )
    return claims


def _claims(payload: dict[str, Any]) -> Claims:
    strings: dict[str, str] = {}
    for name in _STRING_CLAIMS:
        value = payload[name]
        if not isinstance(value, str) or not value:
            raise unauthenticated(f"access token claim {name!r} is not a non-empty string")
        strings[name] = value
    times: dict[str, int] = {}
    for name in _TIME_CLAIMS:
        value = payload[name]
        # Auth signs whole seconds; a fraction, a string or a boolean is not its token.
        if isinstance(value, bool) or not isinstance(value, int):
            raise unauthenticated(f"access token claim {name!r} is not a whole number of seconds")
        times[name] = value
    return Claims(
        application_key=strings["app"],
        user_id=strings["sub"],
        instance_id=strings["iid"],
        environment=strings["env"],
        issued_at=times["iat"],
        expires_at=times["exp"],
    )
