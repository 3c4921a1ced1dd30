"""Parley auth: accounts, applications, user registration, device credentials, access tokens."""

from parley_auth.settings import AuthSettings
from parley_auth.tokens import TokenClaims, verify_token

__all__ = ["AuthSettings", "TokenClaims", "verify_token"]
