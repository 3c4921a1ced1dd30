"""`python -m parley_sip`: run the sip service (settings from PARLEY_* variables)."""

from parley_service.runtime import main
from parley_sip.app import MIGRATIONS, setup
from parley_sip.settings import SipSettings

if __name__ == "__main__":
    main(SipSettings, setup, MIGRATIONS)
