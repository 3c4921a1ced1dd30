"""The sip service's pure parts: settings, the calling number of an INVITE, the prompt's
frames, the client's audio cut into 20 ms frames, and SIP statuses as errors."""

from __future__ import annotations

import numpy as np
import pytest
from av import AudioFrame

from parley_legs.webrtc import FRAME_BYTES, FRAME_SAMPLES, PcmSink, pcm_frame
from parley_protocol.errors import ErrorCode
from parley_service.settings import SettingsError
from parley_sip.bridge import DECLINED, sip_error
from parley_sip.dial import calling_number
from parley_sip.domains import AllowedDomains, host_of
from parley_sip.engine import SipEnd
from parley_sip.prompt import prompt_frames
from parley_sip.settings import SipSettings


def test_the_trunk_uri_carries_the_number_host_port_and_transport() -> None:
    settings = SipSettings(sip_trunk_host="trunk.example.net", sip_trunk_port=5080)
    assert settings.has_trunk and not SipSettings().has_trunk
    assert settings.trunk_uri("+14155550101") == (
        "sip:+14155550101@trunk.example.net:5080;transport=udp"
    )
    assert SipSettings(sip_ice_host_addresses=" 127.0.0.1, ::1 ").ice_host_addresses == (
        "127.0.0.1",
        "::1",
    )
    assert SipSettings().ice_host_addresses is None


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"sip_transport": "sctp"}, "PARLEY_SIP_TRANSPORT must be udp or tcp"),
        ({"sip_trunk_transport": "tls"}, "PARLEY_SIP_TRUNK_TRANSPORT"),
        ({"sip_port": 70000}, "PARLEY_SIP_PORT must be a port"),
        ({"sip_rtp_port": -2}, "PARLEY_SIP_RTP_PORT must be a port"),
        ({"sip_trunk_host": "bad host"}, "is not a host"),
        ({"sip_max_calls": 0}, "PARLEY_SIP_MAX_CALLS must be at least 1"),
        ({"sip_drain_seconds": 0}, "PARLEY_SIP_DRAIN_SECONDS"),
        (
            {"sip_allowed_domains": "sip.example.com, *.bad_domain"},
            "PARLEY_SIP_ALLOWED_DOMAINS: '\\*.bad_domain' is not a host name",
        ),
        ({"sip_allowed_domains": "a b"}, "PARLEY_SIP_ALLOWED_DOMAINS: 'a b'"),
        ({"sip_caller_id": "4155550100"}, "PARLEY_SIP_CALLER_ID '4155550100' is not an E.164"),
        ({"sip_caller_id_rules": "+44=+442079460000,44=+1"}, "RULES: '44=\\+1' is not \\+prefix"),
        ({"sip_caller_id_rules": "+44=+442079460000, +44=+442079460001"}, "\\+44 has two rules"),
    ],
)
def test_bad_settings_name_the_variable(values: dict[str, object], says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        SipSettings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("from_uri", "number"),
    [
        ("sip:+15551230000@trunk.example.net", "+15551230000"),
        ('"Carrier" <sip:+15550100@127.0.0.1:5070>;tag=1', "+15550100"),
        ("sips:alice@example.org;transport=tls", "alice"),
        ("<sip:anonymous.invalid>", "anonymous"),
        (f"sip:{'9' * 60}@h", "9" * 40),
    ],
)
def test_the_calling_number_is_the_from_uris_user_part(from_uri: str, number: str) -> None:
    assert calling_number(from_uri) == number


def test_the_prompt_is_whole_20ms_frames_at_48khz_with_speech_in_them() -> None:
    frames = prompt_frames()
    assert all(len(frame) == FRAME_BYTES for frame in frames)
    samples = np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float64) / 32768
    seconds = len(samples) / 48_000
    assert 3 < seconds < 10
    assert np.sqrt(np.mean(samples**2)) > 0.01  # not silence


def test_the_clients_audio_is_cut_into_20ms_mono_frames_whatever_it_arrives_as() -> None:
    delivered: list[bytes] = []
    sink = PcmSink(delivered.append)
    stereo = AudioFrame.from_ndarray(
        np.full((1, 2 * 480), 1000, dtype=np.int16), format="s16", layout="stereo"
    )
    stereo.sample_rate = 48_000
    for _ in range(3):  # 3 frames of 10 ms: one 20 ms frame out, 10 ms pending
        sink.feed(stereo)
    assert len(delivered) == 1 and len(delivered[0]) == FRAME_BYTES
    assert set(np.frombuffer(delivered[0], dtype="<i2")[100:]) == {1000}
    narrow = AudioFrame.from_ndarray(np.full((1, 160), -2000, dtype=np.int16), layout="mono")
    narrow.sample_rate = 8000  # 20 ms of PCMU-rate audio, resampled to 48 kHz
    for _ in range(5):
        sink.feed(narrow)
    assert len(delivered) >= 4
    assert pcm_frame(delivered[0], 960).samples == FRAME_SAMPLES


def test_sip_statuses_become_sip_errors_and_declines_are_told_apart() -> None:
    error = sip_error(SipEnd(404, "Not Found", by_remote=True))
    assert (error.code, error.reason, error.sip_status) == (
        ErrorCode.ERROR_CODE_SIP,
        "404 Not Found",
        404,
    )
    assert {486, 603} <= DECLINED and 404 not in DECLINED and 503 not in DECLINED


@pytest.mark.parametrize(
    ("identity", "host"),
    [
        ("bob@SIP.Example.com", "sip.example.com"),
        ("bob@sip.example.com:5080", "sip.example.com"),
        ("bob@192.0.2.10:5060", "192.0.2.10"),
        ("bob@[::1]:5070", "::1"),
        ("bob@[2001:DB8:0:0::1]", "2001:db8::1"),
    ],
)
def test_the_host_of_a_sip_identity_is_lowercased_without_port_or_brackets(
    identity: str, host: str
) -> None:
    assert host_of(identity) == host


def test_allowed_domains_take_names_wildcards_and_addresses() -> None:
    domains = AllowedDomains.parse(" sip.example.com, *.carrier.example ,192.0.2.10,[::1] ")
    assert not domains.any_host
    for host in ("sip.example.com", "a.carrier.example", "b.a.carrier.example", "192.0.2.10"):
        assert domains.allows(host), host
    assert domains.allows(host_of("bob@[::1]:5070"))
    for host in ("example.com", "carrier.example", "evilcarrier.example", "192.0.2.11", "other"):
        assert not domains.allows(host), host
    assert (
        AllowedDomains.parse("").allows("anything.example") and AllowedDomains.parse(" , ").any_host
    )
    with pytest.raises(ValueError, match="'\\*' is not"):
        AllowedDomains.parse("*")


def test_caller_id_rules_pick_the_longest_matching_prefix_then_the_default() -> None:
    settings = SipSettings(
        sip_caller_id="+15550001111",
        sip_caller_id_rules=" +44=+442079460000, +4420=+442070000001 ,+46=+46850000000",
    )
    assert settings.caller_id_for("+442079461234") == "+442070000001"
    assert settings.caller_id_for("+441614960000") == "+442079460000"
    assert settings.caller_id_for("+46701234567") == "+46850000000"
    assert settings.caller_id_for("+14155550101") == "+15550001111"
    assert SipSettings().caller_id_for("+14155550101") is None  # the trunk's default
