"""The admin CLI (`python -m parley_auth.admin`) end to end, as subprocesses, against a
running auth service; and its argument checking in-process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

import nats
import pytest

from parley_auth import admin
from parley_auth.app import setup
from parley_auth.migrations import MIGRATIONS
from parley_protocol import subjects
from parley_protocol.clock import SystemClock
from parley_protocol.errors import ErrorCode, ParleyError
from parley_protocol.pb import auth
from parley_service import runtime as rt
from parley_service.db import load_migrations
from tests.integration.test_auth_service import MASTER_KEY, AuthEnv, auth_settings, kid_of


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "parley_auth.admin",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def cli_json(*args: str, env: dict[str, str]) -> dict[str, Any]:
    code, out, err = await cli(*args, "--json", env=env)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out  # exactly one JSON object on stdout
    parsed: dict[str, Any] = json.loads(lines[0])
    return parsed


def base_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(PARLEY_DATABASE_URL=database_url, PARLEY_AUTH_MASTER_KEY=MASTER_KEY)
    return env


async def test_admin_cli_end_to_end(nats_server: Any, database_url: str) -> None:
    env = base_env(database_url)
    every = [m.version for m in load_migrations("parley_auth.migrations")]
    assert await cli_json("migrate", env=env) == {"schema": "auth", "applied": every}
    assert await cli_json("migrate", env=env) == {"schema": "auth", "applied": []}

    account = await cli_json("create-account", "--name", "Acme", env=env)
    assert set(account) == {"account_id", "name"} and account["name"] == "Acme"
    account_id = account["account_id"]
    created = await cli_json(
        "create-app", "--account", account_id, "--name", "Chat", "--environment", "sandbox",
        env=env,
    )  # fmt: skip
    assert set(created) == {
        "application_key",
        "application_secret",
        "environment",
        "account_id",
        "name",
    }
    assert (created["environment"], created["account_id"], created["name"]) == (
        "sandbox",
        account_id,
        "Chat",
    )
    key, old_secret = created["application_key"], created["application_secret"]
    assert str(uuid.UUID(key)) == key

    listed = await cli_json("list-apps", "--account", account_id, env=env)
    assert [a["application_key"] for a in listed["applications"]] == [key]
    assert old_secret not in json.dumps(listed)
    code, text, _ = await cli("list-apps", env=env)
    assert code == 0 and key in text and "sandbox" in text and old_secret not in text

    runtime = await rt.start(auth_settings(nats_server.url, database_url), setup, MIGRATIONS)
    client = AuthEnv(
        runtime, await nats.connect(nats_server.url), SystemClock(), uuid.UUID(account_id),
        key, old_secret,
    )  # fmt: skip
    try:
        first = await client.register(client.self_signed("alice"))  # the app is now cached
        rotated = await cli_json("rotate-secret", "--app", key, env=env)
        new_secret = rotated["application_secret"]
        assert new_secret != old_secret and rotated["application_key"] == key
        assert rotated["secret_rotated_at"]

        # The rotation evicts the cached secret on the service (LISTEN/NOTIFY): old-secret
        # signatures fail from now on, new-secret ones work.
        deadline = time.monotonic() + 5
        while True:
            try:
                await client.register(client.self_signed("alice", secret=old_secret))
            except ParleyError as refused:
                assert refused.code == ErrorCode.ERROR_CODE_INVALID_SIGNATURE
                break
            assert time.monotonic() < deadline, "old secret still accepted after rotation"
            await asyncio.sleep(0.02)
        old = await client.register_refused(client.server_signed("alice", 1, secret=old_secret))
        assert old.code == ErrorCode.ERROR_CODE_INVALID_SIGNATURE
        await client.register(client.self_signed("alice", secret=new_secret))
        await client.register(client.server_signed("alice", 1, secret=new_secret))

        signing = await cli_json("rotate-signing-key", env=env)
        old_kid = kid_of(first.token.token)
        assert signing["retired_kids"] == [old_kid] and signing["kid"] != old_kid
        deadline = time.monotonic() + 5
        while signing["kid"] not in await client.jwks():
            assert time.monotonic() < deadline, "the new signing key never reached the JWKS"
            await asyncio.sleep(0.02)
        assert (await client.verify(first.token.token)).user_id == "alice"
        refreshed = await client.call(
            subjects.AUTH_TOKEN,
            auth.TokenRequest(application_key=key, user_id="alice", credential=first.credential),
            auth.TokenResponse,
        )
        assert kid_of(refreshed.token.token) == signing["kid"]
    finally:
        await client.nc.close()
        await rt.stop(runtime, drain=False)

    code, _, stderr = await cli("create-app", "--account", str(uuid.uuid4()), "--name", "X",
                                "--environment", "production", env=env)  # fmt: skip
    assert code == 2 and "no account has the id" in stderr

    both = await cli_json("create-app", "--new-account", "Beta Ltd", "--name", "Beta chat",
                          "--environment", "production", env=env)  # fmt: skip
    assert both["account_id"] != account_id and both["environment"] == "production"
    listed = await cli_json("list-apps", "--account", both["account_id"], env=env)
    assert [a["application_key"] for a in listed["applications"]] == [both["application_key"]]


async def test_admin_cli_process_exits_2_with_a_message_on_bad_arguments() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    code, out, err = await cli("create-app", "--account", "nope", "--name", "x",
                               "--environment", "staging", env=env)  # fmt: skip
    assert code == 2 and out == ""
    assert "invalid choice: 'staging'" in err


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        admin.main(argv)
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def test_admin_cli_argument_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_AUTH_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("PARLEY_DATABASE_URL", "postgresql://127.0.0.1:1/none")
    account = str(uuid.uuid4())
    cases = [
        ([], "required: COMMAND"),
        (["create-account"], "--name"),
        (["create-account", "--name", "  "], "--name: account name is empty"),
        (["create-app", "--account", "nope", "--name", "x", "--environment", "sandbox"],
         "'nope' is not an account id"),
        (["create-app", "--account", account, "--name", "x", "--environment", "prod"],
         "invalid choice: 'prod'"),
        (["create-app", "--name", "x", "--environment", "sandbox"],
         "one of the arguments --account --new-account is required"),
        (["create-app", "--account", account, "--new-account", "A", "--name", "x",
          "--environment", "sandbox"], "not allowed with argument"),
        (["create-app", "--new-account", " ", "--name", "x", "--environment", "sandbox"],
         "--new-account: account name is empty"),
        (["list-apps", "--account", "123"], "'123' is not an account id"),
        (["rotate-secret", "--app", "NOT-A-KEY"], "--app: application key 'NOT-A-KEY'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ]  # fmt: skip
    for argv, message in cases:
        code, out, err = run_main(argv, capsys)
        assert code == 2, argv
        assert message in err, (argv, err)
        assert out == ""

    monkeypatch.setenv("PARLEY_AUTH_MASTER_KEY", "c2hvcnQ=")
    code, _, err = run_main(["rotate-signing-key"], capsys)
    assert code == 2 and "PARLEY_AUTH_MASTER_KEY decodes to 5 bytes" in err
    monkeypatch.delenv("PARLEY_AUTH_MASTER_KEY")
    code, _, err = run_main(["create-app", "--account", account, "--name", "x",
                             "--environment", "sandbox"], capsys)  # fmt: skip
    assert code == 2 and "PARLEY_AUTH_MASTER_KEY is not set" in err
    monkeypatch.delenv("PARLEY_DATABASE_URL")
    code, _, err = run_main(["list-apps"], capsys)  # needs no master key
    assert code == 2 and "PARLEY_DATABASE_URL is not set" in err

    code, out, _ = run_main(["generate-master-key", "--json"], capsys)
    assert code == 0
    monkeypatch.setenv("PARLEY_AUTH_MASTER_KEY", json.loads(out)["master_key"])
    assert len(admin._master_key()) == 32
