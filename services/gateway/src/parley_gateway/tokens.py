"""Access-token verification: EdDSA JWTs checked locally against a cached JWKS.

The rules themselves (header, signature, claims, expiry, environment) are
`parley_service.access_tokens`, shared with auth; this module keeps the keys. The JWKS
comes from auth over the bus (`parley.auth.jwks`). It is fetched at start, again
when a token names a key id we do not know (at most once per `refetch_seconds`, so a flood
of forged kids cannot hammer auth), and anyway once it is `max_age_seconds` old, so keys
auth stopped publishing stop being trusted. Concurrent fetches share one request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from parley_gateway.metrics import TOKEN_CHECKS
from parley_protocol.clock import Clock, now_ms
from parley_protocol.errors import ErrorCode, ParleyError
from parley_service import access_tokens
from parley_service.access_tokens import Claims
from parley_service.logs import get_logger

__all__ = ["Claims", "JwksFetcher", "TokenVerifier"]

log = get_logger("parley.gateway.tokens")

JwksFetcher = Callable[[], Awaitable[str]]


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
            keys = access_tokens.parse_jwks(text)
        except ValueError as exc:
            raise ParleyError(
                ErrorCode.ERROR_CODE_INTERNAL, f"auth sent a bad JWKS: {exc}"
            ) from exc
        self._keys, self._jwks_json = keys, text
        self._fetched_at = self._clock.monotonic()
        log.info("jwks_fetched", kids=sorted(keys))

    async def _load_key(self, kid: str) -> None:
        """Make sure `kid` is among the keys if auth publishes it; UNAVAILABLE if unsure now.

        Returns with the key still missing when a fresh JWKS lacks it: verification then
        refuses the token for its unknown key.
        """
        if kid in self._keys:
            return
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
            return
        # Fetched moments ago: the key may be newer than that fetch (a rotation reaching this
        # gateway late), or forged. Either way the answer is "not now", not "never".
        raise ParleyError(
            ErrorCode.ERROR_CODE_UNAVAILABLE,
            f"access token is signed with a key this gateway does not know yet ({kid[:64]!r}); "
            "retry shortly",
            access_tokens.FIELD,
        )

    async def verify(self, token: str, verified_digest: bytes = b"") -> Claims:
        """The token's claims, or UNAUTHENTICATED / TOKEN_EXPIRED / WRONG_ENVIRONMENT.

        UNAVAILABLE when its key cannot be known now (auth unreachable, or a key newer
        than the last fetch). `verified_digest`: the digest of a token a gateway already
        verified (a resumed session's record); when it is this token's, the signature is
        not checked again (the other rules are).
        """
        known = bool(verified_digest) and verified_digest == access_tokens.digest(token)
        TOKEN_CHECKS.labels("known" if known else "signature").inc()
        await self._load_key(access_tokens.key_id(token))
        return access_tokens.verify(
            token,
            self._keys.get,
            now_ms(self._clock),
            self._environment,
            verified_digest=verified_digest,
        )
