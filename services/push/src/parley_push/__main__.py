"""`python -m parley_push`: run the push service (settings from PARLEY_* variables)."""

from parley_push.app import MIGRATIONS, setup
from parley_push.settings import PushSettings
from parley_service.runtime import main

if __name__ == "__main__":
    main(PushSettings, setup, MIGRATIONS)
