"""Secrets at rest: AES-256-GCM under the deployment's master key (PARLEY_AUTH_MASTER_KEY,
given to every service that keeps secrets: auth's application secrets and signing keys,
push's provider credentials).

A sealed value is `version (1 byte) | nonce (12 bytes) | ciphertext+tag`. The associated
data binds a ciphertext to what it protects (e.g. `application:<key>`), so a sealed value
copied onto another row does not open.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from parley_service.settings import SettingsError

MASTER_KEY_ENV = "PARLEY_AUTH_MASTER_KEY"
MASTER_KEY_BYTES = 32
_GENERATE_HINT = "generate one with `parley-admin generate-master-key`"


def parse_master_key(value: str) -> bytes:
    """The 32-byte AES-256 key from its base64 text; a clear error naming the variable."""
    if not value.strip():
        raise SettingsError(
            f"{MASTER_KEY_ENV} is not set: it must be the base64 of 32 random bytes "
            f"(the key that encrypts secrets at rest); {_GENERATE_HINT}"
        )
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SettingsError(
            f"{MASTER_KEY_ENV} is not valid base64 ({exc}); it must be the base64 of 32 "
            f"random bytes; {_GENERATE_HINT}"
        ) from exc
    if len(key) != MASTER_KEY_BYTES:
        raise SettingsError(
            f"{MASTER_KEY_ENV} decodes to {len(key)} bytes; it must be the base64 of exactly "
            f"{MASTER_KEY_BYTES} bytes; {_GENERATE_HINT}"
        )
    return key


_VERSION = 1
_NONCE_BYTES = 12
_TAG_BYTES = 16


class SecretBoxError(ValueError):
    """A sealed value that does not open: another master key, tampering, or a wrong context."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError(f"the master key must be 32 bytes, not {len(key)}")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, context.encode("utf-8"))
        return bytes([_VERSION]) + nonce + sealed

    def open(self, sealed: bytes, context: str) -> bytes:
        if len(sealed) < 1 + _NONCE_BYTES + _TAG_BYTES:
            raise SecretBoxError(f"sealed value for {context} is too short ({len(sealed)} bytes)")
        if sealed[0] != _VERSION:
            raise SecretBoxError(f"sealed value for {context} has unknown version {sealed[0]}")
        nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, context.encode("utf-8"))
        except InvalidTag as exc:
            raise SecretBoxError(
                f"sealed value for {context} does not open: wrong master key "
                "(PARLEY_AUTH_MASTER_KEY) or the stored value was altered"
            ) from exc

    def seal_text(self, plaintext: str, context: str) -> bytes:
        return self.seal(plaintext.encode("utf-8"), context)

    def open_text(self, sealed: bytes, context: str) -> str:
        return self.open(sealed, context).decode("utf-8")
