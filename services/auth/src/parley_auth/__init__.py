"""Parley auth: accounts, applications, user registration, device credentials, access tokens."""

from parley_auth.settings import AuthSettings

__all__ = ["AuthSettings"]
