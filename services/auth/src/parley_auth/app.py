"""Composition root of the auth service: settings, stores, caches, keys and endpoints."""

from __future__ import annotations

import asyncio

from parley_auth import store
from parley_auth.apps import AppDirectory
from parley_auth.changes import ChangeWatcher
from parley_auth.credit_handlers import CreditHandlers, declare_credit_endpoints, run_sweeper
from parley_auth.handlers import AuthHandlers, declare_endpoints
from parley_auth.keys import KeyRing, to_datetime
from parley_auth.request_signatures import (
    RequestSignatureVerifier,
    declare_request_signature_endpoint,
)
from parley_auth.settings import AuthSettings
from parley_protocol import subjects
from parley_service import tasks
from parley_service.logs import get_logger
from parley_service.runtime import Runtime
from parley_service.secrets_box import SecretBox

SETTINGS = AuthSettings  # the settings type; build it with AuthSettings.from_env()

log = get_logger("parley.auth")

# Beyond a token lifetime and a reload interval, how long a retired key stays published.
KEY_RETIRE_MARGIN_SECONDS = 60.0


async def setup(runtime: Runtime) -> None:
    """Open the secrets box, make sure a signing key is active, and declare the endpoints."""
    settings = runtime.settings
    if not isinstance(settings, AuthSettings):
        raise TypeError(f"the auth service needs AuthSettings, not {type(settings).__name__}")
    if not settings.database_url:
        raise ValueError("the auth service needs PARLEY_DATABASE_URL")
    box = SecretBox(settings.master_key)
    keys = KeyRing(
        box,
        runtime.clock,
        settings.auth_token_ttl_seconds,
        grace_seconds=settings.auth_key_reload_seconds + KEY_RETIRE_MARGIN_SECONDS,
    )
    await keys.load(runtime.db)
    apps = AppDirectory(runtime.db, box, runtime.clock, settings.auth_app_cache_seconds)

    async def announce_keys() -> None:
        # Gateways refetch the JWKS now, before tokens signed with a new key reach them.
        await runtime.nc.publish(subjects.AUTH_KEYS_CHANGED, b"")
        log.info("signing_keys_announced", kid=keys.active_kid)

    watcher = ChangeWatcher(
        settings.database_url,
        runtime.db,
        keys,
        apps,
        settings.auth_key_reload_seconds,
        keys_changed=announce_keys,
    )
    await watcher.start()
    runtime.on_stop(watcher.stop)
    declare_endpoints(runtime.bus, AuthHandlers(settings, runtime.db, apps, keys, runtime.clock))
    declare_credit_endpoints(runtime.bus, CreditHandlers(settings, runtime.db, apps, runtime.clock))
    declare_request_signature_endpoint(
        runtime.bus, RequestSignatureVerifier(apps, settings.environment)
    )
    housekeeping = asyncio.create_task(_housekeeping(runtime), name="auth-housekeeping")
    # Every replica sweeps expired credit reservations; each is settled once (SKIP LOCKED).
    sweeper = asyncio.create_task(
        run_sweeper(runtime.db, runtime.clock, settings.auth_credit_sweep_seconds),
        name="auth-credit-sweeper",
    )

    async def stop_housekeeping() -> None:
        await tasks.stop(housekeeping, sweeper)

    runtime.on_stop(stop_housekeeping)
    log.info(
        "auth_ready",
        environment=settings.environment,
        kid=keys.active_kid,
        token_ttl_seconds=settings.auth_token_ttl_seconds,
    )


async def _housekeeping(runtime: Runtime, interval: float = 60.0) -> None:
    """Forget used self-signed signatures once they are out of the window anyway."""
    while True:
        await asyncio.sleep(interval)
        try:
            purged = await store.purge_self_signed_uses(
                runtime.db, to_datetime(runtime.clock.time())
            )
            if purged:
                log.info("self_signed_uses_purged", count=purged)
        except Exception as exc:
            log.warning("housekeeping_failed", error=str(exc))
