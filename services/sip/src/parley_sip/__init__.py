"""Parley sip: the PSTN and SIP gateway."""
