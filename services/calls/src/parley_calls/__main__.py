"""`python -m parley_calls`: run the calls service (settings from PARLEY_* variables)."""

from parley_calls.app import MIGRATIONS, setup
from parley_calls.settings import CallsSettings
from parley_service.runtime import main

if __name__ == "__main__":
    main(CallsSettings, setup, MIGRATIONS)
