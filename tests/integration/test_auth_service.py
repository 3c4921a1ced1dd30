"""The auth service in-process against real NATS and PostgreSQL, called over the bus."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS

from parley_auth import accounts, store
from parley_auth.app import setup
from parley_auth.keys import rotate_signing_key, to_datetime
from parley_auth.migrations import MIGRATIONS
from parley_auth.secrets_box import application_secret_context, signing_key_context
from parley_auth.settings import AuthSettings
from parley_protocol import signatures, subjects
from parley_protocol.clock import Clock, FakeClock, SystemClock
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.pb import auth
from parley_service import runtime as rt
from parley_service.access_tokens import Claims, parse_jwks, verify
from parley_service.bus import request
from parley_service.secrets_box import SecretBox

MASTER_KEY = base64.b64encode(bytes(range(100, 132))).decode()
SERVER = auth.REGISTRATION_SCHEME_APPLICATION_SERVER
SELF_SIGNED = auth.REGISTRATION_SCHEME_APPLICATION_SECRET


def auth_settings(nats_url: str, database_url: str, **extra: Any) -> AuthSettings:
    return AuthSettings(
        nats_url=nats_url,
        database_url=database_url,
        health_port=0,
        auth_master_key=MASTER_KEY,
        **extra,
    )


@dataclass
class AuthEnv:
    """One auth replica, a client connection, and a sandbox application."""

    runtime: rt.Runtime
    nc: NATS
    clock: Clock
    account_id: uuid.UUID
    app_key: str
    app_secret: str
    extra_runtimes: list[rt.Runtime] = field(default_factory=list)

    @property
    def db(self) -> Any:
        return self.runtime.db

    async def call(self, subject: str, msg: Any, response_type: type[Any]) -> Any:
        return await request(self.nc, subject, msg, response_type, timeout=5)

    def self_signed(
        self, user_id: str, *, secret: str | None = None, ts_ms: int | None = None, **kw: Any
    ) -> auth.RegisterRequest:
        ts = int(self.clock.time() * 1000) if ts_ms is None else ts_ms
        sig = signatures.self_signed_registration(
            user_id, self.app_key, ts, secret or self.app_secret
        )
        return auth.RegisterRequest(
            application_key=kw.pop("app_key", self.app_key),
            user_id=user_id,
            scheme=SELF_SIGNED,
            signature=sig,
            timestamp_ms=ts,
            **kw,
        )

    def server_signed(
        self, user_id: str, sequence: int, *, secret: str | None = None, **kw: Any
    ) -> auth.RegisterRequest:
        sig = signatures.registration_signature(
            user_id, self.app_key, sequence, secret or self.app_secret
        )
        return auth.RegisterRequest(
            application_key=kw.pop("app_key", self.app_key),
            user_id=user_id,
            scheme=SERVER,
            signature=sig,
            sequence=sequence,
            **kw,
        )

    async def register(self, req: auth.RegisterRequest) -> auth.RegisterResponse:
        response: auth.RegisterResponse = await self.call(
            subjects.AUTH_REGISTER, req, auth.RegisterResponse
        )
        return response

    async def refused(self, subject: str, req: Any, response_type: type[Any]) -> ParleyError:
        with pytest.raises(ParleyError) as info:
            await self.call(subject, req, response_type)
        return info.value

    async def register_refused(self, req: auth.RegisterRequest) -> ParleyError:
        return await self.refused(subjects.AUTH_REGISTER, req, auth.RegisterResponse)

    async def jwks(self) -> str:
        response = await self.call(subjects.AUTH_JWKS, auth.JwksRequest(), auth.JwksResponse)
        jwks_json: str = response.jwks_json
        return jwks_json

    async def verify(self, token: str, now: float | None = None) -> Claims:
        when = self.clock.time() if now is None else now
        return verify(token, parse_jwks(await self.jwks()).get, now_ms=int(when * 1000))


async def start_env(
    nats_url: str, database_url: str, clock: Clock | None = None, **settings: Any
) -> AuthEnv:
    clock = clock or SystemClock()
    runtime = await rt.start(
        auth_settings(nats_url, database_url, **settings), setup, MIGRATIONS, clock
    )
    nc = await nats.connect(nats_url)
    box = SecretBox(bytes(range(100, 132)))
    account = await accounts.create_account(runtime.db, "Acme", clock)
    created = await accounts.create_application(
        runtime.db, box, account.id, "Acme chat", "sandbox", clock
    )
    return AuthEnv(runtime, nc, clock, account.id, created.application.key, created.secret)


async def stop_env(env: AuthEnv) -> None:
    await env.nc.close()
    for runtime in [env.runtime, *env.extra_runtimes]:
        await rt.stop(runtime, drain=False)


@pytest_asyncio.fixture
async def env(nats_server: Any, database_url: str) -> AsyncIterator[AuthEnv]:
    started = await start_env(nats_server.url, database_url)
    try:
        yield started
    finally:
        await stop_env(started)


def kid_of(token: str) -> str:
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    kid: str = header["kid"]
    return kid


async def wait_for_kid_in_jwks(env: AuthEnv, kid: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while kid not in await env.jwks():
        assert time.monotonic() < deadline, f"key {kid} never appeared in the JWKS"
        await asyncio.sleep(0.02)


# Registration -------------------------------------------------------------------------


async def test_self_signed_registration_gives_a_token_that_verifies_against_the_jwks(
    env: AuthEnv,
) -> None:
    before = time.time()
    response = await env.register(env.self_signed("alice smith", device_name="pixel"))
    assert uuid.UUID(response.credential.instance_id)
    assert len(response.credential.instance_secret) >= 43
    claims = await env.verify(response.token.token)
    assert claims.user_id == "alice smith"
    assert claims.application_key == env.app_key
    assert claims.environment == "sandbox"
    assert claims.instance_id == response.credential.instance_id
    assert claims.expires_at - claims.issued_at == 900
    assert response.token.expires_at_ms == claims.expires_at * 1000
    assert before - 1 <= claims.issued_at <= time.time() + 1
    jwks = json.loads(await env.jwks())
    assert [k["kid"] for k in jwks["keys"]] == [kid_of(response.token.token)]
    assert {k["kty"] for k in jwks["keys"]} == {"OKP"}


async def test_app_server_registration_needs_a_greater_sequence_each_time(env: AuthEnv) -> None:
    first = await env.register(env.server_signed("bob", 1))
    assert (await env.verify(first.token.token)).user_id == "bob"
    err = await env.register_refused(env.server_signed("bob", 1))
    assert err.code == ErrorCode.ERROR_CODE_SEQUENCE_REUSED and err.field == "sequence"
    assert "not greater than the last one accepted" in err.reason and "(1)" in err.reason
    await env.register(env.server_signed("bob", 5))
    err = await env.register_refused(env.server_signed("bob", 3))
    assert err.code == ErrorCode.ERROR_CODE_SEQUENCE_REUSED and "(5)" in err.reason
    # Sequences are per user.
    await env.register(env.server_signed("carol", 1))
    err = await env.register_refused(env.server_signed("bob", 0))
    assert err.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT and err.field == "sequence"
    err = await env.register_refused(env.server_signed("bob", 2**63))
    assert err.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT and err.field == "sequence"


async def test_wrong_signatures_are_refused_and_burn_no_sequence(env: AuthEnv) -> None:
    other_secret = base64.b64encode(b"0123456789abcdef").decode()
    err = await env.register_refused(env.server_signed("dave", 4, secret=other_secret))
    assert err.code == ErrorCode.ERROR_CODE_INVALID_SIGNATURE and err.field == "signature"
    forged = env.server_signed("dave", 4)
    forged.user_id = "erin"  # signed for dave
    assert (await env.register_refused(forged)).code == ErrorCode.ERROR_CODE_INVALID_SIGNATURE
    err = await env.register_refused(env.self_signed("dave", secret=other_secret))
    assert err.code == ErrorCode.ERROR_CODE_INVALID_SIGNATURE
    empty = env.self_signed("dave")
    empty.signature = ""
    err = await env.register_refused(empty)
    assert err.code == ErrorCode.ERROR_CODE_INVALID_SIGNATURE and "missing" in err.reason
    # A refused signature did not use up sequence 4.
    await env.register(env.server_signed("dave", 4))


async def test_stale_timestamps_are_refused(env: AuthEnv) -> None:
    now_ms = int(time.time() * 1000)
    err = await env.register_refused(env.self_signed("frank", ts_ms=now_ms - 301_000))
    assert err.code == ErrorCode.ERROR_CODE_STALE_TIMESTAMP
    assert "behind server time" in err.reason and "300 s" in err.reason
    err = await env.register_refused(env.self_signed("frank", ts_ms=now_ms + 400_000))
    assert err.code == ErrorCode.ERROR_CODE_STALE_TIMESTAMP and "ahead of" in err.reason
    await env.register(env.self_signed("frank", ts_ms=now_ms - 290_000))
    err = await env.register_refused(env.self_signed("frank", ts_ms=0))
    assert err.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT and err.field == "timestamp_ms"


async def test_a_self_signed_registration_cannot_be_replayed(env: AuthEnv) -> None:
    captured = env.self_signed("greta")
    first = await env.register(captured)
    err = await env.register_refused(captured)
    assert err.code == ErrorCode.ERROR_CODE_INVALID_SIGNATURE
    assert "used already" in err.reason
    # A freshly signed one (another timestamp) still registers another device.
    later = env.self_signed("greta", ts_ms=captured.timestamp_ms + 1)
    second = await env.register(later)
    assert second.credential.instance_id != first.credential.instance_id
    # Used signatures are forgotten once out of the window, and only then.
    window_end = to_datetime(captured.timestamp_ms / 1000 + 300)
    assert await store.purge_self_signed_uses(env.db, window_end) == 0
    assert await store.purge_self_signed_uses(env.db, window_end + timedelta(seconds=2)) == 2


async def test_bad_user_ids_are_refused_with_a_reason_naming_the_problem(env: AuthEnv) -> None:
    await env.register(env.self_signed("x" * 40))  # the limit itself is fine
    await env.register(env.self_signed("a.b *>~ "))  # subject-unsafe but valid
    cases = {
        "x" * 41: "41 characters long; the limit is 40",
        "al\x01ice": "not printable ASCII",
        "al\tice": "not printable ASCII",
        "ålice": "not printable ASCII",
        "": "empty",
    }
    for user_id, problem in cases.items():
        for req in (env.self_signed(user_id), env.server_signed(user_id, 1)):
            err = await env.register_refused(req)
            assert err.code == ErrorCode.ERROR_CODE_INVALID_USER_ID, user_id
            assert problem in err.reason and err.field == "user_id"


async def test_unknown_app_wrong_environment_bad_key_and_malformed_requests_are_refused(
    env: AuthEnv,
) -> None:
    box = SecretBox(bytes(range(100, 132)))
    unknown = str(uuid.uuid4())
    err = await env.register_refused(env.self_signed("gina", app_key=unknown))
    assert err.code == ErrorCode.ERROR_CODE_UNKNOWN_APPLICATION and unknown in err.reason
    production = await accounts.create_application(
        env.db, box, env.account_id, "Acme live", "production", env.clock
    )
    req = signatures.self_signed_registration(
        "gina", production.application.key, int(time.time() * 1000), production.secret
    )
    err = await env.register_refused(
        auth.RegisterRequest(
            application_key=production.application.key,
            user_id="gina",
            scheme=SELF_SIGNED,
            signature=req,
            timestamp_ms=int(time.time() * 1000),
        )
    )
    assert err.code == ErrorCode.ERROR_CODE_WRONG_ENVIRONMENT
    assert "production" in err.reason and "sandbox" in err.reason
    for bad_key in ("196087A1-E815-4BC4-8984-60D8D8A43F1D", "nope", ""):
        err = await env.register_refused(env.self_signed("gina", app_key=bad_key))
        assert err.code == ErrorCode.ERROR_CODE_INVALID_APPLICATION_KEY
    no_scheme = env.self_signed("gina")
    no_scheme.scheme = auth.REGISTRATION_SCHEME_UNSPECIFIED
    err = await env.register_refused(no_scheme)
    assert err.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT and err.field == "scheme"
    for device_name, problem in (("a\x00b", "control character"), ("d" * 201, "limit is 200")):
        err = await env.register_refused(env.self_signed("gina", device_name=device_name))
        assert err.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT and problem in err.reason
    # Bytes that are not a RegisterRequest at all.
    raw = await env.nc.request(subjects.AUTH_REGISTER, b"\xff\xff\xff", timeout=5)
    assert raw.headers and raw.headers.get("Parley-Error") == "INVALID_ARGUMENT"


async def test_app_lookup(env: AuthEnv) -> None:
    found = await env.call(
        subjects.AUTH_APP_LOOKUP,
        auth.AppLookupRequest(application_key=env.app_key),
        auth.AppLookupResponse,
    )
    assert (found.application_key, found.environment, found.name) == (
        env.app_key,
        "sandbox",
        "Acme chat",
    )
    assert found.account_id == str(env.account_id)
    err = await env.refused(
        subjects.AUTH_APP_LOOKUP,
        auth.AppLookupRequest(application_key=str(uuid.uuid4())),
        auth.AppLookupResponse,
    )
    assert err.code == ErrorCode.ERROR_CODE_UNKNOWN_APPLICATION


# Token refresh ------------------------------------------------------------------------


async def test_device_credential_refreshes_tokens_and_nothing_else_does(env: AuthEnv) -> None:
    alice = await env.register(env.self_signed("alice"))
    bob = await env.register(env.server_signed("bob", 1))

    def token_request(user_id: str, cred: auth.DeviceCredential, **kw: Any) -> auth.TokenRequest:
        return auth.TokenRequest(
            application_key=kw.get("app_key", env.app_key), user_id=user_id, credential=cred
        )

    fresh = await env.call(
        subjects.AUTH_TOKEN, token_request("alice", alice.credential), auth.TokenResponse
    )
    claims = await env.verify(fresh.token.token)
    assert (claims.user_id, claims.instance_id) == ("alice", alice.credential.instance_id)

    async def refused(req: auth.TokenRequest) -> ParleyError:
        err = await env.refused(subjects.AUTH_TOKEN, req, auth.TokenResponse)
        return err

    wrong_secret = auth.DeviceCredential(
        instance_id=alice.credential.instance_id, instance_secret="guessed"
    )
    err = await refused(token_request("alice", wrong_secret))
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "does not match" in err.reason
    err = await refused(token_request("alice", bob.credential))  # bob's device, alice's name
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "another user" in err.reason
    unknown = auth.DeviceCredential(instance_id=str(uuid.uuid4()), instance_secret="x")
    err = await refused(token_request("alice", unknown))
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "register again" in err.reason
    err = await refused(token_request("alice", auth.DeviceCredential()))
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "missing" in err.reason
    bad_id = auth.DeviceCredential(instance_id="1; drop", instance_secret="x")
    err = await refused(token_request("alice", bad_id))
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "not an instance id" in err.reason
    err = await refused(token_request("alice", alice.credential, app_key=str(uuid.uuid4())))
    assert err.code == ErrorCode.ERROR_CODE_UNKNOWN_APPLICATION
    err = await refused(token_request("x" * 41, alice.credential))
    assert err.code == ErrorCode.ERROR_CODE_INVALID_USER_ID

    assert await store.revoke_device_instance(
        env.db, uuid.UUID(alice.credential.instance_id), to_datetime(time.time())
    )
    err = await refused(token_request("alice", alice.credential))
    assert err.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED and "revoked" in err.reason


# Signing keys -------------------------------------------------------------------------


async def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    env: AuthEnv,
) -> None:
    before = await env.register(env.self_signed("alice"))
    old_kid = kid_of(before.token.token)
    box = SecretBox(bytes(range(100, 132)))
    new_kid, retired = await rotate_signing_key(env.db, box, SystemClock())
    assert retired == [old_kid] and new_kid != old_kid
    await wait_for_kid_in_jwks(env, new_kid)  # announced over LISTEN/NOTIFY
    jwks = await env.jwks()
    assert {k["kid"] for k in json.loads(jwks)["keys"]} == {old_kid, new_kid}
    assert (await env.verify(before.token.token)).user_id == "alice"
    after = await env.register(env.self_signed("alice"))
    assert kid_of(after.token.token) == new_kid
    refreshed = await env.call(
        subjects.AUTH_TOKEN,
        auth.TokenRequest(
            application_key=env.app_key, user_id="alice", credential=before.credential
        ),
        auth.TokenResponse,
    )
    assert kid_of(refreshed.token.token) == new_kid
    assert (await env.verify(refreshed.token.token)).user_id == "alice"


async def test_a_retired_key_leaves_the_jwks_after_a_token_lifetime_and_a_grace_period(
    nats_server: Any, database_url: str
) -> None:
    clock = FakeClock(start=time.time())
    env = await start_env(nats_server.url, database_url, clock=clock, auth_token_ttl_seconds=60)
    try:
        token = (await env.register(env.self_signed("alice"))).token.token
        old_kid = kid_of(token)
        box = SecretBox(bytes(range(100, 132)))
        new_kid, _ = await rotate_signing_key(env.db, box, clock)
        await wait_for_kid_in_jwks(env, new_kid)
        # Published for the token lifetime (60 s) + the reload interval (30 s) + 60 s margin.
        clock.advance(149)
        assert old_kid in await env.jwks()
        assert (await env.verify(token, now=clock.time() - 90)).user_id == "alice"
        clock.advance(2)  # retired 151 s ago; every token it signed expired long before
        keys = json.loads(await env.jwks())["keys"]
        assert [k["kid"] for k in keys] == [new_kid]
        with pytest.raises(ParleyError) as info:
            verify(token, parse_jwks(json.dumps({"keys": keys})).get, int(clock.time() * 1000))
        assert info.value.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED
    finally:
        await stop_env(env)


async def test_two_replicas_starting_together_share_one_key_and_one_sequence_per_user(
    nats_server: Any, database_url: str
) -> None:
    # Two replicas start at the same moment on an empty database.
    settings = auth_settings(nats_server.url, database_url)
    first, second = await asyncio.gather(
        rt.start(settings, setup, MIGRATIONS), rt.start(settings, setup, MIGRATIONS)
    )
    box = SecretBox(bytes(range(100, 132)))
    account = await accounts.create_account(first.db, "Acme", SystemClock())
    created = await accounts.create_application(
        first.db, box, account.id, "chat", "sandbox", SystemClock()
    )
    env = AuthEnv(
        first,
        await nats.connect(nats_server.url),
        SystemClock(),
        account.id,
        created.application.key,
        created.secret,
        extra_runtimes=[second],
    )
    try:
        assert await first.db.fetchval("SELECT count(*) FROM auth.signing_keys") == 1
        # The same sequence sent many times at once, spread over both replicas.
        req = env.server_signed("alice", 7)
        results = await asyncio.gather(
            *(env.register(req) for _ in range(20)), return_exceptions=True
        )
        wins = [r for r in results if isinstance(r, auth.RegisterResponse)]
        losses = [r for r in results if isinstance(r, ParleyError)]
        assert len(wins) == 1, results
        assert len(losses) == 19
        assert {e.code for e in losses} == {ErrorCode.ERROR_CODE_SEQUENCE_REUSED}
        rows = await first.db.fetch("SELECT user_id, last_sequence FROM auth.user_sequences")
        assert [(r["user_id"], r["last_sequence"]) for r in rows] == [("alice", 7)]
        assert await first.db.fetchval("SELECT count(*) FROM auth.device_instances") == 1
    finally:
        await stop_env(env)


# Secrets at rest ----------------------------------------------------------------------


async def test_secrets_are_not_stored_in_plaintext(env: AuthEnv) -> None:
    response = await env.register(env.self_signed("alice"))
    secret = response.credential.instance_secret
    conn = await asyncpg.connect(env.runtime.settings.database_url)
    try:
        app_row = await conn.fetchrow(
            "SELECT a.*, a::text AS whole FROM auth.applications a WHERE key = $1", env.app_key
        )
        device_row = await conn.fetchrow(
            "SELECT d.*, d::text AS whole FROM auth.device_instances d WHERE id = $1",
            uuid.UUID(response.credential.instance_id),
        )
        key_row = await conn.fetchrow(
            "SELECT k.*, k::text AS whole FROM auth.signing_keys k WHERE retired_at IS NULL"
        )
    finally:
        await conn.close()
    sealed = bytes(app_row["secret_encrypted"])
    for needle in (env.app_secret.encode(), base64.b64decode(env.app_secret)):
        assert needle not in sealed
    assert env.app_secret not in app_row["whole"]
    box = SecretBox(bytes(range(100, 132)))
    assert box.open_text(sealed, application_secret_context(env.app_key)) == env.app_secret

    assert secret not in device_row["whole"]
    assert bytes(device_row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()

    der = box.open(bytes(key_row["private_key_encrypted"]), signing_key_context(key_row["kid"]))
    raw_private = der[-32:]  # PKCS#8 Ed25519: the seed is the last 32 bytes
    assert raw_private not in bytes(key_row["private_key_encrypted"])
    assert '"d"' not in key_row["public_jwk"]  # only the public half is published
