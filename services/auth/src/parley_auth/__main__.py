"""`python -m parley_auth`: run the auth service (settings from PARLEY_* variables)."""

from parley_auth.app import setup
from parley_auth.migrations import MIGRATIONS
from parley_auth.settings import AuthSettings
from parley_service.runtime import main

if __name__ == "__main__":
    main(AuthSettings, setup, MIGRATIONS)
