"""`python -m parley_gateway`: run the gateway (settings from PARLEY_* variables)."""

from parley_gateway.app import MIGRATIONS, SETTINGS, setup
from parley_service.runtime import main

if __name__ == "__main__":
    main(SETTINGS, setup, MIGRATIONS)
