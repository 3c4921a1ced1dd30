"""`parley-push-admin` (or `python -m parley_push.admin`): set each application's push
provider credentials, sealed under the master key in the `push` schema.

Reads PARLEY_DATABASE_URL and PARLEY_AUTH_MASTER_KEY from the environment; every command
applies pending migrations first. With `--json` a command prints exactly one JSON object on
stdout. Exit codes: 0 done, 2 invalid arguments, credentials or configuration (message on
stderr), 1 any other failure. Secrets are never printed back.

    set-fcm --app KEY --service-account FILE [--endpoint URL]
    set-apns --app KEY --key-file AuthKey.p8 --team-id T --key-id K --topic BUNDLE_ID
             [--sandbox | --endpoint URL]
    set-web-push --app KEY --vapid-key FILE --subject mailto:ops@example.com
    generate-vapid-key           a new VAPID key pair (the private key PEM and the public key)
    show [--app KEY]             what is set (never the secrets)
    remove --app KEY --provider fcm|apns|web_push
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from parley_protocol.errors import ParleyError
from parley_protocol.validation import validate_application_key
from parley_push import credentials, store
from parley_push.app import MIGRATIONS
from parley_push.providers.apns import APNS_PRODUCTION, APNS_SANDBOX, ApnsCredentials
from parley_push.providers.fcm import FCM_ENDPOINT, FcmCredentials
from parley_push.providers.web_push import WebPushCredentials
from parley_push.tokens import provider_name, provider_of
from parley_service.db import apply_migrations
from parley_service.secrets_box import MASTER_KEY_ENV, SecretBox, parse_master_key
from parley_service.settings import SettingsError

PROG = "parley-push-admin"
DATABASE_URL_ENV = "PARLEY_DATABASE_URL"


class UsageError(Exception):
    """Bad arguments, credentials or configuration: exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Set Parley applications' push provider credentials.",
        parents=[common],
        epilog=f"Environment: {DATABASE_URL_ENV}, {MASTER_KEY_ENV}.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("set-fcm", parents=[common], help="FCM HTTP v1: a service account")
    p.add_argument("--app", required=True)
    p.add_argument("--service-account", required=True, type=Path, help="its JSON key file")
    p.add_argument("--endpoint", default=FCM_ENDPOINT)
    p = sub.add_parser("set-apns", parents=[common], help="APNs: a token-based auth key")
    p.add_argument("--app", required=True)
    p.add_argument("--key-file", required=True, type=Path, help="the AuthKey_XXXXXXXXXX.p8")
    p.add_argument("--team-id", required=True)
    p.add_argument("--key-id", required=True)
    p.add_argument("--topic", required=True, help="the app's bundle ID")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--sandbox", action="store_true", help="APNs' development server")
    where.add_argument("--endpoint", default=None)
    p = sub.add_parser("set-web-push", parents=[common], help="Web Push: a VAPID key")
    p.add_argument("--app", required=True)
    p.add_argument("--vapid-key", required=True, type=Path, help="PEM, or base64url scalar")
    p.add_argument("--subject", required=True, help="mailto: or https: contact")
    sub.add_parser("generate-vapid-key", parents=[common], help="print a new VAPID key pair")
    p = sub.add_parser("show", parents=[common], help="what is set (never secrets)")
    p.add_argument("--app")
    p = sub.add_parser("remove", parents=[common], help="remove a provider's credentials")
    p.add_argument("--app", required=True)
    p.add_argument("--provider", required=True, choices=["fcm", "apns", "web_push"])
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = build_parser().parse_args(argv)
    as_json = getattr(args, "json", False)
    try:
        output = asyncio.run(_run(args))
    except UsageError as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        sys.exit(2)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        sys.exit(1)
    if as_json:
        print(json.dumps(output))
    else:
        for key, value in output.items():
            print(f"{key}: {json.dumps(value) if isinstance(value, list | dict) else value}")
    sys.exit(0)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror}") from exc


def _document(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if args.command == "set-fcm":
        return "fcm", {
            "service_account": _read(args.service_account, "service account file"),
            "endpoint": args.endpoint,
        }
    if args.command == "set-apns":
        endpoint = args.endpoint or (APNS_SANDBOX if args.sandbox else APNS_PRODUCTION)
        return "apns", {
            "private_key": _read(args.key_file, "key file"),
            "team_id": args.team_id,
            "key_id": args.key_id,
            "topic": args.topic,
            "endpoint": endpoint,
        }
    return "web_push", {
        "private_key": _read(args.vapid_key, "VAPID key file").strip(),
        "subject": args.subject,
    }


def summary(parsed: credentials.Credentials) -> dict[str, str]:
    """What may be shown of credentials: never a private key."""
    if isinstance(parsed, FcmCredentials):
        return {
            "project_id": parsed.project_id,
            "client_email": parsed.client_email,
            "endpoint": parsed.endpoint,
        }
    if isinstance(parsed, ApnsCredentials):
        return {
            "team_id": parsed.team_id,
            "key_id": parsed.key_id,
            "topic": parsed.topic,
            "endpoint": parsed.endpoint,
        }
    assert isinstance(parsed, WebPushCredentials)
    return {"subject": parsed.subject, "public_key": parsed.public_key}


def _generate_vapid_key() -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    public = WebPushCredentials.from_vapid(pem, "mailto:unused@example.com").public_key
    return {"private_key_pem": pem, "public_key": public}


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "generate-vapid-key":
        return _generate_vapid_key()
    if getattr(args, "app", None) is not None:
        try:
            args.app = validate_application_key(args.app, "--app")
        except ParleyError as exc:
            raise UsageError(f"--app: {exc.reason}") from exc
    try:
        box = SecretBox(parse_master_key(os.environ.get(MASTER_KEY_ENV, "")))
    except SettingsError as exc:
        raise UsageError(str(exc)) from exc
    document: tuple[str, dict[str, Any]] | None = None
    if args.command.startswith("set-"):
        document = _document(args)
        try:
            credentials.parse(*document)
        except ValueError as exc:
            raise UsageError(f"the {document[0]} credentials are not usable: {exc}") from exc
    dsn = os.environ.get(DATABASE_URL_ENV, "").strip()
    if not dsn:
        raise UsageError(f"{DATABASE_URL_ENV} is not set (e.g. postgresql://user@host:5432/db)")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, MIGRATIONS.schema, MIGRATIONS.package)
        now = datetime.now(UTC)
        if document is not None:
            provider, doc = document
            sealed = credentials.seal(box, args.app, provider, doc)
            await store.set_credentials(pool, args.app, provider_of(provider), sealed, now)
            return {
                "application_key": args.app,
                "provider": provider,
                **summary(credentials.parse(provider, doc)),
            }
        if args.command == "remove":
            removed = await store.remove_credentials(pool, args.app, provider_of(args.provider))
            if not removed:
                raise UsageError(f"{args.app} has no {args.provider} credentials")
            return {"application_key": args.app, "provider": args.provider, "removed": True}
        shown = []
        for row in await store.credentials_of(pool, args.app):
            name = provider_name(row.provider)
            entry: dict[str, Any] = {
                "application_key": row.application_key,
                "provider": name,
                "updated_at": row.updated_at.isoformat(),
            }
            try:
                entry.update(summary(credentials.parse(name, credentials.open_sealed(box, row))))
            except ValueError as exc:
                entry["error"] = str(exc)
            shown.append(entry)
        return {"credentials": shown}
    finally:
        await pool.close()


if __name__ == "__main__":
    main()
