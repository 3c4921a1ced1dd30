"""The wire's reading of RTP header extensions (RFC 8285), against aiortc's own writer."""

from __future__ import annotations

import struct

import pylibsrtp
import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from parley_conference.inbox import is_quiet
from parley_conference.wire import NTP_OFFSET, audio_level, ntp_now, srtp_call


def extensions(mid_id: int, level_id: int) -> HeaderExtensionsMap:
    ids = HeaderExtensionsMap()
    ids.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(mid_id, "urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(
                    level_id, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
                ),
            ]
        )
    )
    return ids


def block(packet: bytes) -> tuple[int, int, int]:
    """The packet's extension profile and where its elements start and end."""
    profile, words = struct.unpack_from("!HH", packet, 12)
    return profile, 16, 16 + 4 * words


def test_the_audio_level_is_read_from_a_one_byte_block_beside_other_elements() -> None:
    packet = RtpPacket(payload_type=111, sequence_number=7, timestamp=960, ssrc=1)
    packet.extensions.mid = "audio-0"
    packet.extensions.audio_level = (True, 63)
    data = packet.serialize(extensions(mid_id=1, level_id=2))
    profile, start, end = block(data)
    assert profile == 0xBEDE
    assert audio_level(profile, data, start, end, wanted=2) == 63
    assert audio_level(profile, data, start, end, wanted=3) is None  # not there


def test_a_two_byte_block_and_padding_are_read_too() -> None:
    # Two-byte form (profile 0x1000): padding, an element 5 of 2 bytes, then the level (id 9).
    elements = bytes([0, 5, 2, 0xAA, 0xBB, 9, 1, 0x80 | 20, 0])
    data = bytes(12) + struct.pack("!HH", 0x1000, 3) + elements + bytes(3)
    assert audio_level(0x1000, data, 16, 28, wanted=9) == 20
    assert audio_level(0x1000, data, 16, 28, wanted=4) is None
    # An unknown profile holds no level.
    assert audio_level(0xABCD, data, 16, 28, wanted=9) is None


def test_a_packet_is_quiet_by_its_size_or_its_level() -> None:
    assert is_quiet(b"\xf8\xff\xfe", None)  # Opus's digital silence
    assert not is_quiet(bytes(40), None)  # no level said: it must be decoded
    assert is_quiet(bytes(40), 60) and not is_quiet(bytes(40), 20)


def test_ntp_time_counts_from_1900() -> None:
    import time

    seconds = ntp_now() >> 32
    assert abs(seconds - NTP_OFFSET - time.time()) < 2


def test_an_element_running_past_its_block_is_not_read() -> None:
    # One-byte form: element 2 says 4 bytes of data, the block holds 2.
    data = bytes(12) + struct.pack("!HH", 0xBEDE, 1) + bytes([0x23, 10, 11, 12])
    assert audio_level(0xBEDE, data, 16, 19, wanted=2) is None
    # The block's last element cut short, at the very end of the packet.
    assert audio_level(0xBEDE, data[:17], 16, 17, wanted=2) is None
    # Two-byte form: element 9 says 5 bytes, 1 is there.
    data = bytes(12) + struct.pack("!HH", 0x1000, 1) + bytes([9, 5, 30, 0])
    assert audio_level(0x1000, data, 16, 19, wanted=9) is None


def srtp_pair() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    key = bytes(range(30))
    out = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    into = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
    return pylibsrtp.Session(out), pylibsrtp.Session(into)


def test_the_direct_srtp_calls_do_what_the_sessions_own_methods_do() -> None:
    packet = RtpPacket(payload_type=111, sequence_number=1, timestamp=960, ssrc=7)
    packet.payload = bytes(range(80))
    plain = packet.serialize(extensions(1, 2))
    # Two senders with the same key give the same bytes for the same packet.
    (theirs, _), (ours, receiver) = srtp_pair(), srtp_pair()
    protect = srtp_call(ours, "srtp_protect", pylibsrtp.SRTP_MAX_TRAILER_LEN)
    sealed = protect(plain)
    assert sealed == theirs.protect(plain) and sealed != plain
    unprotect = srtp_call(receiver, "srtp_unprotect", 0)
    assert unprotect(sealed) == plain
    # A replay and a forgery are refused as the library refuses them.
    with pytest.raises(pylibsrtp.Error, match="replay"):
        unprotect(sealed)
    forged = bytearray(protect(plain[:2] + b"\x00\x02" + plain[4:]))
    forged[-1] ^= 1
    with pytest.raises(pylibsrtp.Error, match="auth"):
        unprotect(bytes(forged))
    with pytest.raises(pylibsrtp.Error, match="too long"):
        protect(bytes(1500))
