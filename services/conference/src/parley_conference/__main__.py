"""`python -m parley_conference`: run the conference service (settings from PARLEY_*
variables)."""

from parley_conference.app import MIGRATIONS, setup
from parley_conference.settings import ConferenceSettings
from parley_service.runtime import main

if __name__ == "__main__":
    main(ConferenceSettings, setup, MIGRATIONS)
