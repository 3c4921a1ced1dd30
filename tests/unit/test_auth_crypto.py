"""Secrets at rest (AES-256-GCM box), the master key setting, and credential helpers."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import uuid

import pytest

from parley_auth.credentials import (
    hash_instance_secret,
    instance_secret_matches,
    new_application_key,
    new_application_secret,
    new_instance_secret,
    parse_instance_id,
)
from parley_auth.secrets_box import application_secret_context
from parley_auth.settings import AuthSettings, parse_master_key
from parley_protocol.validation import validate_application_key
from parley_service.secrets_box import SecretBox, SecretBoxError
from parley_service.settings import SettingsError

KEY = bytes(range(32))


def test_box_round_trips_and_never_repeats_a_ciphertext() -> None:
    box = SecretBox(KEY)
    context = application_secret_context("196087a1-e815-4bc4-8984-60d8d8a43f1d")
    first = box.seal_text("oYdgGRXoxEuJhGDY2KQ/HQ==", context)
    second = box.seal_text("oYdgGRXoxEuJhGDY2KQ/HQ==", context)
    assert first != second  # a fresh nonce each time
    assert b"oYdgGRXoxEuJhGDY2KQ/HQ==" not in first
    assert base64.b64decode("oYdgGRXoxEuJhGDY2KQ/HQ==") not in first
    assert box.open_text(first, context) == box.open_text(second, context)
    assert box.open_text(first, context) == "oYdgGRXoxEuJhGDY2KQ/HQ=="
    # version byte + 12-byte nonce + plaintext + 16-byte tag
    assert len(first) == 1 + 12 + 24 + 16


def test_box_refuses_another_key_another_context_and_tampering() -> None:
    box = SecretBox(KEY)
    sealed = box.seal(b"private", "parley.auth.signing_key:a")
    with pytest.raises(SecretBoxError, match="PARLEY_AUTH_MASTER_KEY"):
        SecretBox(os.urandom(32)).open(sealed, "parley.auth.signing_key:a")
    with pytest.raises(SecretBoxError, match="does not open"):
        box.open(sealed, "parley.auth.signing_key:b")  # copied onto another row
    tampered = bytearray(sealed)
    tampered[-1] ^= 0x01
    with pytest.raises(SecretBoxError, match="does not open"):
        box.open(bytes(tampered), "parley.auth.signing_key:a")
    with pytest.raises(SecretBoxError, match="too short"):
        box.open(sealed[:20], "parley.auth.signing_key:a")
    with pytest.raises(SecretBoxError, match="unknown version 9"):
        box.open(b"\x09" + sealed[1:], "parley.auth.signing_key:a")
    with pytest.raises(ValueError, match="32 bytes"):
        SecretBox(b"short")


def test_master_key_must_be_base64_of_32_bytes_and_errors_name_the_variable() -> None:
    good = base64.b64encode(KEY).decode()
    assert parse_master_key(good) == KEY
    for bad, problem in [
        ("", "not set"),
        ("   ", "not set"),
        ("not base64!!", "not valid base64"),
        (base64.b64encode(b"x" * 16).decode(), "decodes to 16 bytes"),
    ]:
        with pytest.raises(SettingsError, match="PARLEY_AUTH_MASTER_KEY") as info:
            parse_master_key(bad)
        assert problem in str(info.value)


def test_auth_settings_from_env() -> None:
    good = base64.b64encode(KEY).decode()
    db = {"PARLEY_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/parley"}
    settings = AuthSettings.from_env(
        {**db, "PARLEY_AUTH_MASTER_KEY": good, "PARLEY_AUTH_TOKEN_TTL_SECONDS": "60"}
    )
    assert settings.master_key == KEY
    assert settings.auth_token_ttl_seconds == 60
    assert settings.auth_self_signed_window_seconds == 300
    assert settings.service_name == "auth"
    assert good not in repr(settings)  # the key never shows in a repr or a log line
    with pytest.raises(SettingsError, match="PARLEY_AUTH_MASTER_KEY is not set"):
        AuthSettings.from_env({})
    with pytest.raises(SettingsError, match="PARLEY_AUTH_TOKEN_TTL_SECONDS"):
        AuthSettings.from_env(
            {**db, "PARLEY_AUTH_MASTER_KEY": good, "PARLEY_AUTH_TOKEN_TTL_SECONDS": "0"}
        )
    with pytest.raises(SettingsError, match="PARLEY_DATABASE_URL is not set"):
        AuthSettings.from_env({"PARLEY_AUTH_MASTER_KEY": good})
    with pytest.raises(SettingsError, match="PARLEY_AUTH_KEY_RELOAD_SECONDS"):
        AuthSettings.from_env(
            {**db, "PARLEY_AUTH_MASTER_KEY": good, "PARLEY_AUTH_KEY_RELOAD_SECONDS": "nan"}
        )
    with pytest.raises(SettingsError, match="PARLEY_LOG_LEVEL"):
        AuthSettings.from_env({**db, "PARLEY_AUTH_MASTER_KEY": good, "PARLEY_LOG_LEVEL": "loud"})
    settings = AuthSettings.from_env({**db, "PARLEY_AUTH_MASTER_KEY": good})
    assert settings.auth_token_ttl_seconds == 900


def test_service_refuses_to_start_without_a_master_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    done = subprocess.run(
        [sys.executable, "-m", "parley_auth"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "PARLEY_AUTH_MASTER_KEY is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_generated_application_keys_and_secrets_have_the_documented_shape() -> None:
    key = new_application_key()
    assert validate_application_key(key) == key
    secret = new_application_secret()
    assert len(base64.b64decode(secret, validate=True)) == 16
    assert new_application_secret() != secret


def test_instance_secrets_are_stored_as_sha256_and_compared_exactly() -> None:
    secret = new_instance_secret()
    assert len(secret) >= 43 and secret != new_instance_secret()
    stored = hash_instance_secret(secret)
    assert stored == hashlib.sha256(secret.encode()).digest()
    assert instance_secret_matches(secret, stored)
    assert not instance_secret_matches(secret + "x", stored)
    assert not instance_secret_matches(secret[:-1], stored)
    instance_id = uuid.uuid4()
    assert parse_instance_id(str(instance_id)) == instance_id
    assert parse_instance_id("not-an-id") is None
