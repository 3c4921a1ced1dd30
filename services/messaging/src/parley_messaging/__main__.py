"""`python -m parley_messaging`: run the messaging service (settings from PARLEY_* variables)."""

from parley_messaging.app import MIGRATIONS, setup
from parley_messaging.settings import MessagingSettings
from parley_service.runtime import main

if __name__ == "__main__":
    main(MessagingSettings, setup, MIGRATIONS)
