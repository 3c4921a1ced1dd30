"""What each of auth's sealed values is bound to (the associated data of its seal; the box
itself is `parley_service.secrets_box`)."""

from __future__ import annotations


def application_secret_context(application_key: str) -> str:
    return f"parley.auth.application_secret:{application_key}"


def signing_key_context(kid: str) -> str:
    return f"parley.auth.signing_key:{kid}"
