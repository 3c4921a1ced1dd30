"""Settings of the sip service: its SIP user agent, the trunk phone calls go through, the
test number, and the WebRTC side."""

from __future__ import annotations

import dataclasses
import functools
import re

from parley_legs.webrtc import host_addresses
from parley_protocol.errors import ParleyError
from parley_protocol.validation import validate_phone_number
from parley_service.settings import ServiceSettings, SettingsError, positive
from parley_sip.domains import AllowedDomains

TRANSPORTS = ("udp", "tcp")
TEST_NUMBER = "+46000000000"
_HOST = re.compile(r"[A-Za-z0-9.\-:\[\]]+")


_PREFIX = re.compile(r"\+[0-9]{1,15}")


def _is_e164(number: str) -> bool:
    try:
        validate_phone_number(number)
    except ParleyError:
        return False
    return True


def caller_id_rules(text: str) -> list[tuple[str, str]]:
    """PARLEY_SIP_CALLER_ID_RULES as (prefix, caller ID) pairs, the longest prefix first;
    SettingsError naming the rule that is not `+prefix=+E.164 number`."""
    rules: dict[str, str] = {}
    for rule in (r.strip() for r in text.split(",")):
        if not rule:
            continue
        prefix, _, caller_id = (part.strip() for part in rule.partition("="))
        if not _PREFIX.fullmatch(prefix) or not _is_e164(caller_id):
            raise SettingsError(
                f"PARLEY_SIP_CALLER_ID_RULES: {rule[:64]!r} is not +prefix=+number "
                "(a called number's prefix, then the E.164 number calls to it present)"
            )
        if prefix in rules:
            raise SettingsError(f"PARLEY_SIP_CALLER_ID_RULES: {prefix} has two rules")
        rules[prefix] = caller_id
    return sorted(rules.items(), key=lambda rule: -len(rule[0]))


@dataclasses.dataclass(frozen=True)
class SipSettings(ServiceSettings):
    service_name: str = "sip"
    # The SIP user agent: the address and port it binds (0: a free port) and its transport.
    sip_bind_host: str = "127.0.0.1"
    sip_port: int = 0
    sip_transport: str = "udp"
    # The address put in Contact and SDP when it is not the bound one (behind NAT).
    sip_public_host: str = ""
    # The first port of calls' RTP (4 ports per call the build holds, from this one up; a
    # firewall or a network policy can then open exactly those); 0: the SIP stack's own
    # choice (4000 up, unbounded).
    sip_rtp_port: int = 0
    # The trunk calls to phone numbers go through (empty: only the test number can be
    # called); per environment, like every setting.
    sip_trunk_host: str = ""
    sip_trunk_port: int = 5060
    sip_trunk_transport: str = "udp"
    sip_trunk_username: str = ""
    sip_trunk_password: str = dataclasses.field(default="", repr=False)
    sip_trunk_realm: str = "*"
    # Caller ID on calls to phones: a number in E.164 ("": the trunk's default applies) ...
    sip_caller_id: str = ""
    # ... unless a rule names one for the called number's prefix (the longest that matches
    # wins), e.g. "+44=+442079460000, +1=+14155550100" to present a local number.
    sip_caller_id_rules: str = ""
    # The hosts app users may call SIP addresses at (see domains.py): host names,
    # *.domain wildcards and IP addresses, comma-separated; empty: any host.
    sip_allowed_domains: str = ""
    # The number that needs no trunk and no credit: it answers, plays the prompt, hangs up.
    sip_test_number: str = TEST_NUMBER
    # Calls one replica holds at once; one more is refused UNAVAILABLE (another replica may
    # take the retry).
    sip_max_calls: int = 200
    # How long a stopping replica (SIGTERM) lets its live calls go on before it ends them.
    sip_drain_seconds: float = 3600.0
    # How often a live call to a phone tells auth how long it has lasted (a replica that
    # dies mid-call is then charged for that long by auth's sweeper).
    sip_credit_touch_seconds: float = 10.0
    # The local addresses WebRTC offers as ICE host candidates, comma-separated ("": every
    # interface aioice finds, and 127.0.0.1).
    sip_ice_host_addresses: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, transport in (
            ("PARLEY_SIP_TRANSPORT", self.sip_transport),
            ("PARLEY_SIP_TRUNK_TRANSPORT", self.sip_trunk_transport),
        ):
            if transport not in TRANSPORTS:
                raise SettingsError(f"{name} must be udp or tcp, not {transport!r}")
        for name, port in (
            ("PARLEY_SIP_PORT", self.sip_port),
            ("PARLEY_SIP_TRUNK_PORT", self.sip_trunk_port),
            ("PARLEY_SIP_RTP_PORT", self.sip_rtp_port),
        ):
            if not 0 <= port <= 65535:
                raise SettingsError(f"{name} must be a port (0 to 65535), not {port}")
        if self.sip_trunk_host and not _HOST.fullmatch(self.sip_trunk_host):
            raise SettingsError(f"PARLEY_SIP_TRUNK_HOST {self.sip_trunk_host!r} is not a host")
        if self.sip_max_calls < 1:
            raise SettingsError(
                f"PARLEY_SIP_MAX_CALLS must be at least 1, not {self.sip_max_calls}"
            )
        if self.sip_caller_id and not _is_e164(self.sip_caller_id):
            raise SettingsError(
                f"PARLEY_SIP_CALLER_ID {self.sip_caller_id[:32]!r} is not an E.164 number"
            )
        # Parsed once here (a bad value stops the start), kept for every dial.
        _ = self.caller_ids, self.allowed_domains
        positive("PARLEY_SIP_DRAIN_SECONDS", self.sip_drain_seconds)
        positive("PARLEY_SIP_CREDIT_TOUCH_SECONDS", self.sip_credit_touch_seconds)

    @property
    def ice_host_addresses(self) -> tuple[str, ...] | None:
        return host_addresses(self.sip_ice_host_addresses)

    def caller_id_for(self, number: str) -> str | None:
        """The caller ID a call to `number` presents (None: the trunk's default)."""
        for prefix, caller_id in self.caller_ids:
            if number.startswith(prefix):
                return caller_id
        return self.sip_caller_id or None

    @functools.cached_property
    def caller_ids(self) -> list[tuple[str, str]]:
        """PARLEY_SIP_CALLER_ID_RULES, parsed (see caller_id_rules)."""
        return caller_id_rules(self.sip_caller_id_rules)

    @functools.cached_property
    def allowed_domains(self) -> AllowedDomains:
        try:
            return AllowedDomains.parse(self.sip_allowed_domains)
        except ValueError as exc:
            raise SettingsError(f"PARLEY_SIP_ALLOWED_DOMAINS: {exc}") from None

    @property
    def has_trunk(self) -> bool:
        return bool(self.sip_trunk_host)

    def trunk_uri(self, number: str) -> str:
        """The SIP URI a phone number is called at through the trunk."""
        host = self.sip_trunk_host
        port = f":{self.sip_trunk_port}" if self.sip_trunk_port else ""
        return f"sip:{number}@{host}{port};transport={self.sip_trunk_transport}"
