"""`parley-admin` (or `python -m parley_auth.admin`): operate accounts, applications, keys,
call credits and call rates.

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

from parley_auth import accounts, credit_admin, credits, numbers, store
from parley_auth.keys import rotate_signing_key
from parley_auth.migrations import MIGRATIONS
from parley_protocol.clock import SystemClock
from parley_protocol.errors import ParleyError
from parley_protocol.validation import (
    validate_application_key,
    validate_phone_number,
    validate_user_id,
)
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
        description="Operate Parley accounts, applications, signing keys, credits and rates.",
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
    owner = p.add_mutually_exclusive_group(required=True)
    owner.add_argument("--account", help="account id (a UUID)")
    owner.add_argument(
        "--new-account", metavar="NAME", help="create an account of this name for the application"
    )
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
    target_help = "account id, or the key of one of its applications (a UUID)"
    p = sub.add_parser(
        "credits-topup",
        parents=[common],
        help="add credit to an account's balance (for calls to phones)",
    )
    p.add_argument("target", metavar="ACCOUNT_OR_APP", help=target_help)
    p.add_argument("amount", metavar="AMOUNT", help="units of the account's currency, e.g. 12.50")
    p = sub.add_parser(
        "credits-show", parents=[common], help="an account's balance and last ledger entries"
    )
    p.add_argument("target", metavar="ACCOUNT_OR_APP", help=target_help)
    p.add_argument("--limit", type=int, default=20, help="ledger entries shown (20)")
    p = sub.add_parser(
        "rates-set",
        parents=[common],
        help="set what a minute to numbers starting with a prefix costs",
    )
    p.add_argument("prefix", metavar="PREFIX", help="'+' then digits, e.g. +1415; '+' alone: any")
    p.add_argument("rate", metavar="RATE", help="units per minute, e.g. 0.012; 0: free")
    p.add_argument("--description", help="e.g. 'US, San Francisco'")
    sub.add_parser("rates-list", parents=[common], help="list the call rates")
    p = sub.add_parser(
        "numbers-set",
        parents=[common],
        help="map a phone number to the application user a call from a phone to it rings",
    )
    p.add_argument("number", metavar="NUMBER", help="E.164, e.g. +14155550123")
    p.add_argument("app", metavar="APP_KEY", help="the application's key")
    p.add_argument("user", metavar="USER_ID", help="the user its calls ring")
    p = sub.add_parser("numbers-remove", parents=[common], help="unmap a phone number")
    p.add_argument("number", metavar="NUMBER", help="E.164")
    sub.add_parser("numbers-list", parents=[common], help="list the mapped phone numbers")
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


def _application_line(app: Output) -> str:
    rotated = app["secret_rotated_at"]
    return (
        f"{app['application_key']}  {app['environment']:<10}  "
        f"account {app['account_id']}  {app['name']!r}  created {app['created_at']}"
        + (f"  secret rotated {rotated}" if rotated else "")
    )


# The outputs that are lists, and one line of each of their rows.
_LISTINGS: dict[str, Callable[[Output], str]] = {
    "rates": lambda r: f"{r['prefix']:<17} {r['rate_per_minute']:>10}/min  {r['description']}",
    "numbers": lambda n: f"{n['number']:<17} {n['application_key']}  {n['user_id']!r}",
    "applications": _application_line,
}


def _print(output: Output, as_json: bool) -> None:
    if as_json:
        print(json.dumps(output, sort_keys=False))
        return
    if "entries" in output:
        _print_statement(output)
        return
    for listing, line in _LISTINGS.items():
        if listing in output:
            rows: list[Output] = output[listing]
            if not rows:
                print(f"no {listing}")
            for row in rows:
                print(line(row))
            return
    for key, value in output.items():
        if isinstance(value, list):
            value = ", ".join(str(item) for item in value) or "none"
        print(f"{key}: {value}")
    if "application_secret" in output:
        print("(the secret is shown only now; keep it safe)", file=sys.stderr)


def _print_statement(output: Output) -> None:
    currency = output["currency"]
    print(
        f"account {output['account_id']}: balance {output['balance']} {currency}"
        f" (available {output['available']}, held by calls under way {output['held']})"
    )
    for entry in output["entries"]:
        line = (
            f"{entry['at']}  {entry['kind']:<5}  {entry['amount']:>12}"
            f"  balance {entry['balance_after']}"
        )
        if entry["kind"] == "call":
            line += (
                f"  {entry['number']}  {entry['duration_seconds']} s"
                f" at {entry['rate_per_minute']}/min"
            )
        print(line)


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
    if command == "create-app" and args.new_account is not None:
        try:
            args.new_account = accounts.check_name(args.new_account, "account")
        except accounts.AdminError as exc:
            raise UsageError(f"--new-account: {exc}") from exc
    if command in ("create-app", "list-apps") and args.account is not None:
        args.account = _account_id(args.account)
    if command == "rotate-secret":
        try:
            args.app = validate_application_key(args.app, "--app")
        except ParleyError as exc:
            raise UsageError(f"--app: {exc.reason}") from exc
    if command in ("credits-topup", "credits-show"):
        args.target = _account_or_app(args.target)
    try:
        if command == "credits-topup":
            args.amount = credits.parse_amount(args.amount)
            if args.amount <= 0:
                raise UsageError("AMOUNT: a top-up adds more than 0")
        if command == "rates-set":
            args.prefix = credits.check_prefix(args.prefix)
            args.rate = credits.parse_amount(args.rate, "rate")
            if args.description is not None:
                args.description = args.description.strip()
                if not args.description.isprintable():
                    raise UsageError("--description has a control character")
                if len(args.description) > accounts.MAX_NAME_LENGTH:
                    raise UsageError(
                        f"--description is longer than {accounts.MAX_NAME_LENGTH} characters"
                    )
    except (credits.AmountError, accounts.AdminError) as exc:
        raise UsageError(str(exc)) from exc
    try:
        if command in ("numbers-set", "numbers-remove"):
            args.number = validate_phone_number(args.number, "NUMBER")
        if command == "numbers-set":
            args.app = validate_application_key(args.app, "APP_KEY")
            args.user = validate_user_id(args.user, "USER_ID")
    except ParleyError as exc:
        raise UsageError(exc.reason) from exc
    if command == "credits-show" and not 1 <= args.limit <= 10_000:
        raise UsageError(f"--limit must be 1 to 10000, not {args.limit}")
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


def _account_or_app(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise UsageError(f"{value!r} is not an account id or an application key (a UUID)") from exc


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
    clock = SystemClock()
    try:
        async with db.acquire() as conn, conn.transaction():
            account_id = args.account
            if args.new_account is not None:
                account_id = (await accounts.create_account(conn, args.new_account, clock)).id
            created = await accounts.create_application(
                conn, _require_box(box), account_id, args.name, args.environment, clock
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


async def _credits_topup(args: argparse.Namespace, db: Any, box: SecretBox | None) -> Output:
    try:
        account = await credit_admin.resolve_account(db, args.target)
        done = await credit_admin.top_up(db, account, args.amount, SystemClock())
    except accounts.AdminError as exc:
        raise UsageError(str(exc)) from exc
    return {
        "account_id": str(account),
        "amount": credits.format_amount(done.entry.amount),
        "balance": credits.format_amount(done.entry.balance_after),
        "currency": done.currency,
        "entry_id": done.entry.id,
    }


async def _credits_show(args: argparse.Namespace, db: Any, box: SecretBox | None) -> Output:
    try:
        account = await credit_admin.resolve_account(db, args.target)
    except accounts.AdminError as exc:
        raise UsageError(str(exc)) from exc
    shown = await credit_admin.statement(db, account, args.limit)
    money = credits.format_amount
    return {
        "account_id": str(account),
        "currency": shown.currency,
        "balance": money(shown.balance),
        "held": money(shown.held),
        "available": money(shown.available),
        "entries": [
            {
                "id": entry.id,
                "at": entry.at.isoformat(),
                "kind": entry.kind,
                "amount": money(entry.amount),
                "balance_after": money(entry.balance_after),
                "application_key": entry.application_key,
                "call_id": entry.call_id,
                "number": entry.number,
                "duration_seconds": entry.duration_seconds,
                "rate_per_minute": (
                    None if entry.rate_per_minute is None else money(entry.rate_per_minute)
                ),
            }
            for entry in shown.entries
        ],
    }


def _rate_output(rate: Any) -> Output:
    return {
        "prefix": rate.prefix,
        "rate_per_minute": credits.format_amount(rate.rate_per_minute),
        "description": rate.description,
        "updated_at": rate.updated_at.isoformat(),
    }


async def _rates_set(args: argparse.Namespace, db: Any, box: SecretBox | None) -> Output:
    rate = await credit_admin.set_rate(db, args.prefix, args.rate, args.description, SystemClock())
    return _rate_output(rate)


async def _rates_list(args: argparse.Namespace, db: Any, box: SecretBox | None) -> Output:
    return {"rates": [_rate_output(rate) for rate in await credit_admin.list_rates(db)]}


def _number_output(entry: Any) -> Output:
    return {
        "number": entry.number,
        "application_key": entry.application_key,
        "user_id": entry.user_id,
        "updated_at": entry.updated_at.isoformat(),
    }


async def _numbers_set(args: argparse.Namespace, db: Any, box: SecretBox | None) -> Output:
    try:
        entry = await numbers.assign(db, args.number, args.app, args.user, SystemClock())
    except ParleyError as exc:
        raise UsageError(exc.reason) from exc
    return _number_output(entry)


async def _numbers_remove(args: argparse.Namespace, db: Any, box: SecretBox | None) -> Output:
    if not await numbers.remove(db, args.number):
        raise UsageError(f"{args.number} is not mapped")
    return {"number": args.number, "removed": True}


async def _numbers_list(args: argparse.Namespace, db: Any, box: SecretBox | None) -> Output:
    return {"numbers": [_number_output(entry) for entry in await numbers.list_all(db)]}


_COMMANDS: dict[str, Command] = {
    "migrate": _migrate,
    "create-account": _create_account,
    "create-app": _create_app,
    "rotate-secret": _rotate_secret,
    "list-apps": _list_apps,
    "rotate-signing-key": _rotate_signing_key,
    "credits-topup": _credits_topup,
    "credits-show": _credits_show,
    "rates-set": _rates_set,
    "rates-list": _rates_list,
    "numbers-set": _numbers_set,
    "numbers-remove": _numbers_remove,
    "numbers-list": _numbers_list,
}


if __name__ == "__main__":
    main()
