"""Operator actions on accounts and applications (used by the admin CLI and by tests)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from parley_auth import store
from parley_auth.credentials import new_application_key, new_application_secret
from parley_auth.keys import to_datetime
from parley_auth.secrets_box import application_secret_context
from parley_protocol.clock import Clock
from parley_service.secrets_box import SecretBox

ENVIRONMENTS = ("sandbox", "production")
MAX_NAME_LENGTH = 200


class AdminError(ValueError):
    """An operator action that cannot be done as asked (bad name, unknown account, ...)."""


@dataclass(frozen=True)
class NewApplication:
    application: store.Application
    secret: str  # shown once, never stored in plaintext


def check_name(name: str, what: str) -> str:
    name = name.strip()
    if not name:
        raise AdminError(f"{what} name is empty")
    if not name.isprintable():
        raise AdminError(f"{what} name has a control character")
    if len(name) > MAX_NAME_LENGTH:
        raise AdminError(
            f"{what} name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    return name


async def create_account(db: Any, name: str, clock: Clock) -> store.Account:
    account = store.Account(uuid.uuid4(), check_name(name, "account"), to_datetime(clock.time()))
    await store.insert_account(db, account.id, account.name, account.created_at)
    return account


async def create_application(
    db: Any, box: SecretBox, account_id: uuid.UUID, name: str, environment: str, clock: Clock
) -> NewApplication:
    if environment not in ENVIRONMENTS:
        raise AdminError(f"environment must be 'sandbox' or 'production', not {environment!r}")
    name = check_name(name, "application")
    if await store.get_account(db, account_id) is None:
        raise AdminError(f"no account has the id {account_id}")
    key, secret = new_application_key(), new_application_secret()
    app = store.Application(
        id=uuid.uuid4(),
        account_id=account_id,
        key=key,
        name=name,
        environment=environment,
        secret_encrypted=box.seal_text(secret, application_secret_context(key)),
        created_at=to_datetime(clock.time()),
        secret_rotated_at=None,
    )
    await store.insert_application(db, app)
    return NewApplication(app, secret)


async def rotate_application_secret(
    db: Any, box: SecretBox, key: str, clock: Clock
) -> NewApplication:
    """A new secret at once; the old one stops working on every replica (cache evicted)."""
    secret = new_application_secret()
    sealed = box.seal_text(secret, application_secret_context(key))
    async with db.acquire() as conn, conn.transaction():
        if not await store.update_application_secret(conn, key, sealed, to_datetime(clock.time())):
            raise AdminError(f"no application has the key {key}")
        await store.notify_change(conn, store.APPLICATION_CHANGED_PREFIX + key)
        app = await store.get_application_by_key(conn, key)
    assert app is not None
    return NewApplication(app, secret)
