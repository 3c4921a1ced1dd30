"""Real SIP peers for tests: sipp scenarios (the carrier) and a pjsua2 phone process."""
