"""`python -m parley_auth`: run the auth service."""

import sys

from parley_auth.app import MIGRATIONS, setup
from parley_auth.settings import AuthSettings
from parley_service.runtime import main
from parley_service.settings import SettingsError


def run() -> None:
    try:
        settings = AuthSettings.from_env()
    except SettingsError as exc:
        sys.exit(f"parley-auth: configuration error: {exc}")
    main(settings, setup, MIGRATIONS)


if __name__ == "__main__":
    run()
