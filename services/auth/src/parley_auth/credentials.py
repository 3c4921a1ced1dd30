"""Random identifiers and secrets: application keys and secrets, device instance credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid

APPLICATION_SECRET_BYTES = 16
INSTANCE_SECRET_BYTES = 32


def new_application_key() -> str:
    """A lowercase GUID, e.g. 196087a1-e815-4bc4-8984-60d8d8a43f1d."""
    return str(uuid.uuid4())


def new_application_secret() -> str:
    """Base64 of 16 random bytes, e.g. oYdgGRXoxEuJhGDY2KQ/HQ==."""
    return base64.b64encode(secrets.token_bytes(APPLICATION_SECRET_BYTES)).decode("ascii")


def new_instance_secret() -> str:
    """The secret half of a device credential: 32 random bytes, base64url without padding."""
    return secrets.token_urlsafe(INSTANCE_SECRET_BYTES)


def hash_instance_secret(secret: str) -> bytes:
    """What is stored of an instance secret. It has 256 bits of entropy, so SHA-256 suffices."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def instance_secret_matches(secret: str, stored_hash: bytes) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(hash_instance_secret(secret), stored_hash)


def parse_instance_id(value: str) -> uuid.UUID | None:
    """The instance id of a credential, or None when it is not a UUID."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
