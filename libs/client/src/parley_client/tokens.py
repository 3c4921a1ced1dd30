"""Access tokens: trade the stored device credential for one, or register the device first."""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from parley_client.config import ClientConfig, Endpoint
from parley_client.credentials import CredentialKey, CredentialStore, DeviceCredential
from parley_client.errors import ErrorType, ParleyError
from parley_client.http import AuthApi
from parley_client.logs import ClientLog
from parley_client.registration import ClientRegistration
from parley_protocol import signatures
from parley_protocol.clock import Clock, now_ms
from parley_protocol.errors import ErrorCode
from parley_protocol.pb import auth

# Refresh once this share of a token's lifetime has passed.
REFRESH_AT = 0.8


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_at_ms: int  # on the server's clock
    lifetime_ms: int  # as it was when the token arrived

    def __repr__(self) -> str:  # never show the token
        return f"AccessToken(expires_at_ms={self.expires_at_ms}, lifetime_ms={self.lifetime_ms})"


@dataclass(frozen=True)
class Identity:
    application_key: str
    application_secret: str | None
    user_id: str
    device_name: str


class Authenticator:
    """Holds the current access token and gets a new one when asked.

    A stored credential is traded for a token (POST /v1/token); a credential the server
    refuses as UNAUTHENTICATED is dropped and the device registers again (POST /v1/register),
    self-signed with the application secret, or signed by the app server through
    `ask_app(registration)` (the client's `on_registration_credentials_required`).
    """

    def __init__(
        self,
        *,
        identity: Identity,
        key: CredentialKey,
        store: CredentialStore,
        api: AuthApi,
        clock: Clock,
        log: ClientLog,
        can_ask_app: Callable[[], bool],
        ask_app: Callable[[ClientRegistration], Coroutine[Any, Any, None]],
        registration_timeout: float,
    ) -> None:
        self._identity = identity
        self._key = key
        self._store = store
        self._api = api
        self._clock = clock
        self._log = log
        self._can_ask_app = can_ask_app
        self._ask_app = ask_app
        self._registration_timeout = registration_timeout
        self._credential: DeviceCredential | None = None
        self._lock = asyncio.Lock()
        self._generation = 0
        self._asking: set[asyncio.Task[None]] = set()
        self.token: AccessToken | None = None
        self.skew_ms = 0  # server clock minus ours, learnt from Welcome

    @classmethod
    def for_config(
        cls,
        config: ClientConfig,
        endpoints: Sequence[Endpoint],
        http: aiohttp.ClientSession,
        *,
        clock: Clock,
        log: ClientLog,
        can_ask_app: Callable[[], bool],
        ask_app: Callable[[ClientRegistration], Coroutine[Any, Any, None]],
    ) -> Authenticator:
        """The authenticator of a checked client configuration, its credentials kept per
        set of gateway hosts, application and user."""
        assert config.application_key and config.user_id
        key = CredentialKey.of(
            [str(endpoint) for endpoint in endpoints], config.application_key, config.user_id
        )
        return cls(
            identity=Identity(
                application_key=config.application_key,
                application_secret=config.application_secret,
                user_id=config.user_id,
                device_name=config.device_name or f"python on {platform.node() or 'unknown'}",
            ),
            key=key,
            store=CredentialStore(Path(config.storage_dir), log),
            api=AuthApi(http, config.request_timeout, log),
            clock=clock,
            log=log,
            can_ask_app=can_ask_app,
            ask_app=ask_app,
            registration_timeout=config.registration_timeout,
        )

    def server_now_ms(self) -> int:
        return now_ms(self._clock) + self.skew_ms

    def learn_server_time(self, server_time_ms: int) -> None:
        if server_time_ms > 0:
            self.skew_ms = server_time_ms - now_ms(self._clock)

    def confirm_expiry(self, expires_at_ms: int) -> None:
        """The gateway's word on when the current token expires (Welcome, TokenAccepted)."""
        if self.token is not None and expires_at_ms > 0:
            self.token = AccessToken(self.token.token, expires_at_ms, self.token.lifetime_ms)

    def refresh_delay(self) -> float:
        """Seconds until the current token is due for refresh (0: now)."""
        if self.token is None:
            return 0.0
        remaining = self.token.expires_at_ms - self.server_now_ms()
        due_in = remaining - (1 - REFRESH_AT) * self.token.lifetime_ms
        return max(0.0, due_in / 1000)

    def needs_refresh(self) -> bool:
        return self.token is None or self.refresh_delay() <= 0

    async def valid_token(self, endpoints: Sequence[Endpoint]) -> AccessToken:
        """The current token if it is not due for refresh, else a new one."""
        if self.token is not None and not self.needs_refresh():
            return self.token
        return await self.new_token(endpoints)

    async def new_token(self, endpoints: Sequence[Endpoint]) -> AccessToken:
        """A fresh token. Concurrent callers share one round trip."""
        generation = self._generation
        async with self._lock:
            if self._generation != generation and self.token is not None:
                return self.token
            token = await self._obtain(endpoints)
            self.token = token
            self._generation += 1
            return token

    async def _obtain(self, endpoints: Sequence[Endpoint]) -> AccessToken:
        credential = self._credential or await self._store.load(self._key)
        if credential is not None:
            try:
                response = await self._api.token(
                    endpoints,
                    auth.TokenRequest(
                        application_key=self._identity.application_key,
                        user_id=self._identity.user_id,
                        credential=auth.DeviceCredential(
                            instance_id=credential.instance_id,
                            instance_secret=credential.instance_secret,
                        ),
                    ),
                )
            except ParleyError as exc:
                if exc.error_code != ErrorCode.ERROR_CODE_UNAUTHENTICATED:
                    raise
                self._log.warning(
                    "auth",
                    f"device credential {credential.instance_id} was refused ({exc.message}); "
                    "registering this device again",
                )
                self._credential = None
                await self._store.delete(self._key)
            else:
                self._credential = credential
                return self._accept(response.token)
        return await self._register(endpoints)

    async def _register(self, endpoints: Sequence[Endpoint]) -> AccessToken:
        identity = self._identity
        request = auth.RegisterRequest(
            application_key=identity.application_key,
            user_id=identity.user_id,
            device_name=identity.device_name,
        )
        if identity.application_secret:
            request.scheme = auth.REGISTRATION_SCHEME_APPLICATION_SECRET
            request.timestamp_ms = now_ms(self._clock)
            request.signature = signatures.self_signed_registration(
                identity.user_id,
                identity.application_key,
                request.timestamp_ms,
                identity.application_secret,
            )
            self._log.info("auth", f"registering user {identity.user_id!r} (self-signed)")
        else:
            signature, sequence = await self._ask_app_to_sign()
            request.scheme = auth.REGISTRATION_SCHEME_APPLICATION_SERVER
            request.signature = signature
            request.sequence = sequence
            self._log.info(
                "auth",
                f"registering user {identity.user_id!r} (signed by the app server, "
                f"sequence {sequence})",
            )
        try:
            response = await self._api.register(endpoints, request)
        except ParleyError as exc:
            self._log.error("auth", f"registration refused: {exc}")
            raise
        credential = DeviceCredential(
            response.credential.instance_id, response.credential.instance_secret
        )
        if (
            not credential.instance_id
            or not credential.instance_secret
            or not (response.token.token)
        ):
            raise ParleyError(
                ErrorCode.ERROR_CODE_INTERNAL,
                "registration answer lacks the device credential or the access token",
            )
        self._credential = credential
        try:
            await self._store.save(self._key, credential, now_ms(self._clock))
        except OSError as exc:
            self._log.error(
                "credentials",
                f"cannot keep the device credential in {self._store.directory}: {exc}; "
                "this device will register again next time",
            )
        self._log.info("auth", f"registered as device {credential.instance_id}")
        return self._accept(response.token)

    async def _ask_app_to_sign(self) -> tuple[str, int]:
        if not self._can_ask_app():
            raise ParleyError(
                ErrorCode.ERROR_CODE_UNAUTHENTICATED,
                "this device must register, but no application secret is configured and no "
                "client listener implements on_registration_credentials_required",
                ErrorType.OTHER,
            )
        registration = ClientRegistration(
            self._identity.user_id,
            self._identity.application_key,
            self._log,
            asyncio.get_running_loop(),
        )
        self._log.info("auth", "asking the application for registration credentials")
        # The listener may answer before it returns, or later (from a task or a thread);
        # the timeout covers both, and a listener still running after a failure is stopped.
        asking = asyncio.create_task(self._ask_app(registration))
        self._asking.add(asking)
        asking.add_done_callback(self._asking.discard)
        try:
            return await registration.wait(self._registration_timeout)
        except BaseException:
            asking.cancel()
            raise

    def _accept(self, token: auth.AccessToken) -> AccessToken:
        if not token.token:
            raise ParleyError(ErrorCode.ERROR_CODE_INTERNAL, "the gateway issued an empty token")
        lifetime = max(0, token.expires_at_ms - self.server_now_ms())
        return AccessToken(token.token, token.expires_at_ms, lifetime)
