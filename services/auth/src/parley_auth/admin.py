"""`parley-admin` (or `python -m parley_auth.admin`): operate accounts, applications and keys.

Reads PARLEY_DATABASE_URL (and PARLEY_AUTH_MASTER_KEY for commands that seal or open
secrets) from the environment. Every command applies pending migrations first. With
`--json` a command prints exactly one JSON object on stdout. Exit codes: 0 done,
2 invalid arguments or configuration (message on stderr), 1 any other failure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import asyncpg

from parley_auth import accounts, store
from parley_auth.app import MIGRATIONS
from parley_auth.keys import rotate_signing_key
from parley_protocol.clock import SystemClock
from parley_protocol.errors import ParleyError
from parley_protocol.validation import validate_application_key
from parley_service.db import apply_migrations
from parley_service.secrets_box import MASTER_KEY_BYTES, MASTER_KEY_ENV, SecretBox, parse_master_key
from parley_service.settings import SettingsError

PROG = "parley-admin"
DATABASE_URL_ENV = "PARLEY_DATABASE_URL"

Output = dict[str, Any]
Command = Callable[[argparse.Namespace, Any, "SecretBox | None"], Awaitable[Output]]


class UsageError(Exception):
    """Bad arguments or configuration: exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print exactly one JSON object on stdout",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operate Parley accounts, applications and signing keys.",
        parents=[common],
        epilog=f"Environment: {DATABASE_URL_ENV} (all but generate-master-key), "
        f"{MASTER_KEY_ENV} (create-app, rotate-secret, rotate-signing-key).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser("migrate", parents=[common], help="apply the auth schema's migrations")
    sub.add_parser(
        "generate-master-key",
        parents=[common],
        help=f"print a new random value for {MASTER_KEY_ENV}",
    )
    p = sub.add_parser("create-account", parents=[common], help="create an account")
    p.add_argument("--name", required=True)
    p = sub.add_parser("create-app", parents=[common], help="create an application")
    p.add_argument("--account", required=True, help="account id (a UUID)")
    p.add_argument("--name", required=True)
    p.add_argument("--environment", required=True, choices=accounts.ENVIRONMENTS)
    p = sub.add_parser(
        "rotate-secret", parents=[common], help="give an application a new secret (shown once)"
    )
    p.add_argument("--app", required=True, help="application key")
    p = sub.add_parser("list-apps", parents=[common], help="list applications (never secrets)")
    p.add_argument("--account", help="only this account's applications")
    sub.add_parser(
        "rotate-signing-key",
        parents=[common],
        help="activate a new token signing key; the old one keeps verifying for one token TTL",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    parser = build_parser()
    args = parser.parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        # Everything that can be checked without the database is checked before connecting.
        request = _prepare(args)
        output = request.output if request.run is None else asyncio.run(_execute(request))
    except UsageError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"{PROG} {args.command}: database error: {exc}", file=sys.stderr)
        sys.exit(1)
    _print(output, as_json)
    sys.exit(0)


def _print(output: Output, as_json: bool) -> None:
    if as_json:
        print(json.dumps(output, sort_keys=False))
        return
    if "applications" in output:
        apps: list[Output] = output["applications"]
        if not apps:
            print("no applications")
        for app in apps:
            print(
                f"{app['application_key']}  {app['environment']:<10}  "
                f"account {app['account_id']}  {app['name']!r}  created {app['created_at']}"
                + (
                    f"  secret rotated {app['secret_rotated_at']}"
                    if app["secret_rotated_at"]
                    else ""
                )
            )
        return
    for key, value in output.items():
        if isinstance(value, list):
            value = ", ".join(str(item) for item in value) or "none"
        print(f"{key}: {value}")
    if "application_secret" in output:
        print("(the secret is shown only now; keep it safe)", file=sys.stderr)


@dataclass
class _Request:
    args: argparse.Namespace
    dsn: str = ""
    box: SecretBox | None = None
    run: Command | None = None
    output: Output = field(default_factory=dict)


def _prepare(args: argparse.Namespace) -> _Request:
    """Check arguments and environment; a UsageError names what is wrong."""
    command: str = args.command
    if command == "generate-master-key":
        key = base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode()
        return _Request(args, output={"master_key": key})
    if command in ("create-account", "create-app"):
        what = "account" if command == "create-account" else "application"
        try:
            args.name = accounts.check_name(args.name, what)
        except accounts.AdminError as exc:
            raise UsageError(f"--name: {exc}") from exc
    if command in ("create-app", "list-apps") and args.account is not None:
        args.account = _account_id(args.account)
    if command == "rotate-secret":
        try:
            args.app = validate_application_key(args.app, "--app")
        except ParleyError as exc:
            raise UsageError(f"--app: {exc.reason}") from exc
    needs_box = command in ("create-app", "rotate-secret", "rotate-signing-key")
    box = SecretBox(_master_key()) if needs_box else None
    dsn = os.environ.get(DATABASE_URL_ENV, "").strip()
    if not dsn:
        raise UsageError(f"{DATABASE_URL_ENV} is not set (e.g. postgresql://user@host:5432/db)")
    return _Request(args, dsn, box, _COMMANDS[command])


async def _execute(request: _Request) -> Output:
    assert request.run is not None
    pool = await asyncpg.create_pool(request.dsn, min_size=1, max_size=2)
    try:
        if request.run is not _migrate:
            await _apply_migrations(pool)
        return await request.run(request.args, pool, request.box)
    finally:
        await pool.close()


def _master_key() -> bytes:
    try:
        return parse_master_key(os.environ.get(MASTER_KEY_ENV, ""))
    except SettingsError as exc:
        raise UsageError(str(exc)) from exc


def _account_id(value: str, option: str = "--account") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise UsageError(f"{option} {value!r} is not an account id (a UUID)") from exc


def _require_box(box: SecretBox | None) -> SecretBox:
    assert box is not None
    return box


async def _apply_migrations(db: Any) -> list[int]:
    async with db.acquire() as conn:
        applied: list[int] = await apply_migrations(conn, MIGRATIONS.schema, MIGRATIONS.package)
    return applied


async def _migrate(args: argparse.Namespace, db: Any, box: SecretBox | None) -> Output:
    return {"schema": MIGRATIONS.schema, "applied": await _apply_migrations(db)}


async def _create_account(args: argparse.Namespace, db: Any, box: SecretBox | None) -> Output:
    try:
        account = await accounts.create_account(db, args.name, SystemClock())
    except accounts.AdminError as exc:
        raise UsageError(str(exc)) from exc
    return {"account_id": str(account.id), "name": account.name}


async def _create_app(args: argparse.Namespace, db: Any, box: SecretBox | None) -> Output:
    try:
        created = await accounts.create_application(
            db, _require_box(box), args.account, args.name, args.environment, SystemClock()
        )
    except accounts.AdminError as exc:
        raise UsageError(str(exc)) from exc
    app = created.application
    return {
        "application_key": app.key,
        "application_secret": created.secret,
        "environment": app.environment,
        "account_id": str(app.account_id),
        "name": app.name,
    }


async def _rotate_secret(args: argparse.Namespace, db: Any, box: SecretBox | None) -> Output:
    try:
        rotated = await accounts.rotate_application_secret(
            db, _require_box(box), args.app, SystemClock()
        )
    except accounts.AdminError as exc:
        raise UsageError(str(exc)) from exc
    app = rotated.application
    return {
        "application_key": app.key,
        "application_secret": rotated.secret,
        "environment": app.environment,
        "secret_rotated_at": app.secret_rotated_at.isoformat() if app.secret_rotated_at else None,
    }


async def _list_apps(args: argparse.Namespace, db: Any, box: SecretBox | None) -> Output:
    apps = await store.list_applications(db, args.account)
    return {
        "applications": [
            {
                "application_key": app.key,
                "name": app.name,
                "environment": app.environment,
                "account_id": str(app.account_id),
                "created_at": app.created_at.isoformat(),
                "secret_rotated_at": (
                    app.secret_rotated_at.isoformat() if app.secret_rotated_at else None
                ),
            }
            for app in apps
        ]
    }


async def _rotate_signing_key(args: argparse.Namespace, db: Any, box: SecretBox | None) -> Output:
    kid, retired = await rotate_signing_key(db, _require_box(box), SystemClock())
    return {"kid": kid, "retired_kids": retired}


_COMMANDS: dict[str, Command] = {
    "migrate": _migrate,
    "create-account": _create_account,
    "create-app": _create_app,
    "rotate-secret": _rotate_secret,
    "list-apps": _list_apps,
    "rotate-signing-key": _rotate_signing_key,
}


if __name__ == "__main__":
    main()
