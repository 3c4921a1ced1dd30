"""Access-token verification: EdDSA JWTs checked locally against a cached JWKS.

The JWKS comes from auth over the bus (`parley.auth.jwks`). It is fetched at start, again
when a token names a key id we do not know (at most once per `refetch_seconds`, so a flood
of forged kids cannot hammer auth), and anyway once it is `max_age_seconds` old, so keys
auth stopped publishing stop being trusted. Concurrent fetches share one request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from parley_protocol.clock import Clock, now_ms
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service.logs import get_logger

log = get_logger("parley.gateway.tokens")

ISSUER = "parley-auth"
AUDIENCE = "parley"
ALGORITHM = "EdDSA"
_REQUIRED_CLAIMS = ["iss", "aud", "sub", "app", "env", "iid", "exp"]

JwksFetcher = Callable[[], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified access token says about its holder."""

    application_key: str
    user_id: str
    instance_id: str
    environment: str
    expires_at_ms: int


def _unauthenticated(reason: str) -> ParleyError:
    return ParleyError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, reason, "access_token")


def parse_jwks(text: str) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a JWKS document by key id; other keys are skipped."""
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


class TokenVerifier:
    def __init__(
        self,
        fetch: JwksFetcher,
        clock: Clock,
        environment: str,
        refetch_seconds: float,
        max_age_seconds: float,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._environment = environment
        self._refetch_seconds = refetch_seconds
        self._max_age_seconds = max_age_seconds
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._jwks_json: str | None = None
        self._fetched_at: float | None = None  # monotonic time of the last good fetch
        self._attempted_at: float | None = None  # monotonic time of the last attempt
        self._fetching: asyncio.Future[None] | None = None

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def jwks_json(self) -> str:
        """The JWKS document as auth published it (fetched if missing or stale)."""
        if self._jwks_json is None or self._stale():
            try:
                await self.refresh()
            except ParleyError:
                if self._jwks_json is None:
                    raise
        assert self._jwks_json is not None
        return self._jwks_json

    async def refresh(self) -> None:
        """Fetch the JWKS now; concurrent callers share one fetch."""
        fetching = self._fetching
        if fetching is None:
            fetching = asyncio.ensure_future(self._do_fetch())
            self._fetching = fetching
            fetching.add_done_callback(self._fetch_done)
        await asyncio.shield(fetching)

    def _fetch_done(self, fetching: asyncio.Future[None]) -> None:
        if self._fetching is fetching:
            self._fetching = None
        if not fetching.cancelled():
            fetching.exception()  # mark retrieved: every awaiter has seen it already

    async def refresh_if_stale(self) -> None:
        """Refetch a JWKS past its max age (failed attempts retried once per refetch window)."""
        recently_tried = (
            self._attempted_at is not None
            and self._clock.monotonic() - self._attempted_at < self._refetch_seconds
        )
        if self._stale() and not recently_tried:
            try:
                await self.refresh()
            except ParleyError as err:
                log.warning("jwks_refresh_failed", error=str(err))

    def _stale(self) -> bool:
        if self._fetched_at is None:
            return True
        return self._clock.monotonic() - self._fetched_at >= self._max_age_seconds

    async def _do_fetch(self) -> None:
        self._attempted_at = self._clock.monotonic()
        text = await self._fetch()
        try:
            keys = parse_jwks(text)
        except ValueError as exc:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INTERNAL, f"auth sent a bad JWKS: {exc}"
            ) from exc
        self._keys, self._jwks_json = keys, text
        self._fetched_at = self._clock.monotonic()
        log.info("jwks_fetched", kids=sorted(keys))

    async def _key_for(self, kid: str) -> Ed25519PublicKey:
        key = self._keys.get(kid)
        if key is not None:
            return key
        now = self._clock.monotonic()
        # Rate-limited, so forged key ids cannot hammer auth; without any key yet (auth was
        # down), every attempt may fetch (concurrent ones share one request).
        may_refetch = (
            not self._keys
            or self._fetching is not None
            or self._attempted_at is None
            or now - self._attempted_at >= self._refetch_seconds
        )
        if may_refetch:
            try:
                await self.refresh()
            except ParleyError as err:
                if not self._keys:
                    raise ParleyError(
                        ErrorCode.ERROR_CODE_UNAVAILABLE,
                        f"cannot verify access tokens now: {err.reason}",
                    ) from err
                log.warning("jwks_refetch_failed", error=str(err))
            key = self._keys.get(kid)
            if key is not None:
                return key
            raise _unauthenticated(f"access token is signed with an unknown key ({kid[:64]!r})")
        # Fetched moments ago: the key may be newer than that fetch (a rotation reaching this
        # gateway late), or forged. Either way the answer is "not now", not "never".
        raise ParleyError(
            ErrorCode.ERROR_CODE_UNAVAILABLE,
            f"access token is signed with a key this gateway does not know yet ({kid[:64]!r}); "
            "retry shortly",
            "access_token",
        )

    async def verify(self, token: str) -> Claims:
        """The token's claims, or UNAUTHENTICATED / TOKEN_EXPIRED / WRONG_ENVIRONMENT."""
        if not token:
            raise _unauthenticated("no access token was given")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _unauthenticated(f"access token is not a JWT: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            raise _unauthenticated(
                f"access token must be signed with {ALGORITHM}, not {str(header.get('alg'))[:32]!r}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _unauthenticated("access token names no key id (kid)")
        key = await self._key_for(kid)
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                # Expiry is checked below against the injected clock.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": _REQUIRED_CLAIMS,
                },
            )
        except jwt.InvalidAudienceError as exc:
            raise _unauthenticated(f"access token audience is not {AUDIENCE!r}") from exc
        except jwt.InvalidIssuerError as exc:
            raise _unauthenticated(f"access token issuer is not {ISSUER!r}") from exc
        except jwt.InvalidSignatureError as exc:
            raise _unauthenticated("access token signature is not valid") from exc
        except jwt.PyJWTError as exc:
            raise _unauthenticated(f"access token is not valid: {exc}") from exc
        claims = _claims(payload)
        if claims.expires_at_ms <= now_ms(self._clock):
            raise ParleyError(
                ErrorCode.ERROR_CODE_TOKEN_EXPIRED,
                "access token has expired; get a new one with the device credential",
                "access_token",
            )
        if claims.environment != self._environment:
            raise ParleyError(
                ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT,
                f"access token is for the {claims.environment[:32]} environment; this is "
                f"the {self._environment} environment",
                "access_token",
            )
        return claims


def _claims(payload: dict[str, Any]) -> Claims:
    strings = {name: payload.get(name) for name in ("sub", "app", "iid", "env")}
    for name, value in strings.items():
        if not isinstance(value, str) or not value:
            raise _unauthenticated(f"access token claim {name!r} is not a non-empty string")
    exp = payload.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise _unauthenticated("access token claim 'exp' is not a number")
    return Claims(
        application_key=str(strings["app"]),
        user_id=str(strings["sub"]),
        instance_id=str(strings["iid"]),
        environment=str(strings["env"]),
        expires_at_ms=int(exp * 1000),
    )
