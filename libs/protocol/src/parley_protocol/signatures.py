"""Signatures of the registration schemes.

APPLICATION_SERVER (the guide's scheme):
    Base64(SHA1(userId + applicationKey + sequence + applicationSecret))
APPLICATION_SECRET (the client holds the secret and signs its own request):
    Base64(HMAC-SHA256(applicationSecret, "parley-register\n" + key + "\n" + userId + "\n" + ts))
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def registration_signature(
    user_id: str, application_key: str, sequence: int, application_secret: str
) -> str:
    """The guide's signature, as the app's server computes it."""
    to_sign = f"{user_id}{application_key}{sequence}{application_secret}"
    digest = hashlib.sha1(to_sign.encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def self_signed_registration(
    user_id: str, application_key: str, timestamp_ms: int, application_secret: str
) -> str:
    """The signature a client holding the application secret puts on its own registration."""
    message = f"parley-register\n{application_key}\n{user_id}\n{timestamp_ms}".encode()
    digest = hmac.new(application_secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signatures_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
