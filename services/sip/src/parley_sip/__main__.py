"""`python -m parley_sip`: run the sip service (settings from PARLEY_* variables)."""

import faulthandler

from parley_service.runtime import main
from parley_sip.app import MIGRATIONS, setup
from parley_sip.settings import SipSettings

if __name__ == "__main__":
    # pjsua2 is native code on threads of its own: a crash there prints every thread's
    # Python stack to stderr, so it can be told where it happened.
    faulthandler.enable()
    main(SipSettings, setup, MIGRATIONS)
