"""Which SIP addresses app users may call (`PARLEY_SIP_ALLOWED_DOMAINS`).

`call_sip("user@host")` makes this deployment's SIP user agent send an INVITE to whatever
host the app user names, so an operator can narrow it to the SIP domains its applications
need: a comma-separated list of host names (`sip.example.com`), wildcards for every
subdomain of one (`*.example.com`: `a.example.com`, `b.a.example.com`, not `example.com`
itself) and IP addresses (`192.0.2.10`, `::1` or `[::1]`). Empty (the default): any host.
Phone calls go to the trunk and are not affected.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def _address(text: str) -> str | None:
    """`text` as a normalised IP address, None when it is not one."""
    try:
        return str(ipaddress.ip_address(text.removeprefix("[").removesuffix("]")))
    except ValueError:
        return None


def host_of(identity: str) -> str:
    """The host of a SIP identity `user@host[:port]`, lowercased (an IPv6 address without
    its brackets, normalised)."""
    host = identity.rpartition("@")[2].lower()
    if host.startswith("["):
        host = host[1 : host.find("]")]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return _address(host) or host


class AllowedDomains:
    """The hosts SIP calls may go to (see the module's doc)."""

    def __init__(self, names: frozenset[str], suffixes: tuple[str, ...], any_host: bool) -> None:
        self._names = names
        self._suffixes = suffixes
        self.any_host = any_host

    @classmethod
    def parse(cls, text: str) -> AllowedDomains:
        """From the setting's value; ValueError naming the entry that is not a host, a
        wildcard domain or an IP address."""
        entries = [entry.strip().lower() for entry in text.split(",") if entry.strip()]
        names: set[str] = set()
        suffixes: list[str] = []
        for entry in entries:
            address = _address(entry)
            if address is not None:
                names.add(address)
            elif entry.startswith("*.") and _HOST_NAME.fullmatch(entry[2:]):
                suffixes.append(entry[1:])  # ".example.com"
            elif _HOST_NAME.fullmatch(entry) and len(entry) <= 253:
                names.add(entry)
            else:
                raise ValueError(
                    f"{entry[:64]!r} is not a host name, a wildcard domain (*.example.com) "
                    "or an IP address"
                )
        return cls(frozenset(names), tuple(suffixes), not entries)

    def allows(self, host: str) -> bool:
        """Whether a SIP call may go to `host` (as `host_of` gives it)."""
        if self.any_host or host in self._names:
            return True
        return any(host.endswith(suffix) for suffix in self._suffixes)
