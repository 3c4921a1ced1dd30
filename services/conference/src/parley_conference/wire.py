"""A leg's RTP on the wire: each packet sent and received by a plain function call on the
event loop, without aiortc's per-packet machinery.

aiortc 1.16 moves each RTP packet through several hops: a received datagram is first tried
as STUN (an exception when it is not), queued, picked up by the DTLS transport's task,
parsed into an RtpPacket, routed, and handed to the receiver's coroutine; a sent one is
awaited by the sender's task through a track, built as an RtpPacket with a fresh NTP time,
serialised, and awaited through the DTLS and ICE transports. For a conference replica, with
a packet each way for every participant every 20 ms, those hops cost more than mixing does
(measured: the sender's task and the receiver's path took over 60 % of the replica).

Once a leg's connection is up, `Wire.attach` takes over the nominated ICE pair's socket for
RTP (RTCP, DTLS and STUN still go to aiortc):

- In: an SRTP datagram is decrypted with the DTLS transport's own SRTP session, its header
  read here (sequence number, timestamp, payload type, the audio-level extension) and its
  payload pushed into the leg's inbox. The receiver's statistics are kept as aiortc keeps
  them, so its receiver reports (loss, jitter, round trip) still go out.
- Out: `push(payload)` writes the header from a template made once (SSRC, payload type, mid
  extension), advances sequence number and timestamp (960 a packet), encrypts with the DTLS
  transport's SRTP session and sends on the pair's socket at once. The sender's counters for
  its sender reports are kept up to date, so the far side's statistics hold.

Until it is attached (and after a leg's connection is lost) a push is dropped and counted:
the mixer only pushes to connected legs. Received packets before then take aiortc's path,
which ends in the same inbox (media._Intake).

Like media.py, this reaches into aiortc's and aioice's internals; `attach` checks they are
there and raises otherwise (the version is pinned).
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import Callable
from typing import Any, Final

import pylibsrtp
from aioice.ice import StunProtocol
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from pylibsrtp._binding import ffi
from pylibsrtp._binding import lib as srtp_lib

from parley_conference.inbox import Inbox, is_quiet
from parley_conference.metrics import RTP_REJECTED
from parley_conference.opus import FRAME_SAMPLES, SAMPLE_RATE

AUDIO_LEVEL_URI: Final = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
# Seconds from the NTP epoch (1900) to the Unix epoch (1970).
NTP_OFFSET: Final = 2_208_988_800
# aiortc 1.16's attributes this module reads or keeps up to date (name-mangled privates).
_SENDER_COUNTS: Final = (
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__packet_count",
)
_SENDER_EXTENSIONS: Final = "_RTCRtpSender__rtp_header_extensions_map"
_RECEIVER_STREAMS: Final = "_RTCRtpReceiver__remote_streams"
_HEAD: Final = struct.Struct("!HI")  # sequence number and timestamp, at offset 2
_EXTENSION: Final = struct.Struct("!HH")  # profile and length in words
_FAILED_SRTP: Final = RTP_REJECTED.labels("srtp")
_MALFORMED: Final = RTP_REJECTED.labels("malformed")
_FOREIGN: Final = RTP_REJECTED.labels("payload_type")


class WireError(RuntimeError):
    """aiortc, aioice or pylibsrtp are not what this module was written for."""


def srtp_call(session: pylibsrtp.Session, function: str, trailer: int) -> Callable[[bytes], bytes]:
    """`session.protect` (function "srtp_protect", trailer SRTP_MAX_TRAILER_LEN) or
    `session.unprotect` ("srtp_unprotect", 0) without pylibsrtp 1.0's wrapper, which costs
    more than the cipher on a 100-byte packet (a type check, a new C int and a bound method
    a call): the same C function on the session's own buffer. Raises pylibsrtp.Error as
    the wrapper does, also for a packet too long for the buffer."""
    c_function = getattr(srtp_lib, function)
    try:
        srtp = session._srtp[0]
        cdata, buffer = session._cdata, session._buffer
    except AttributeError:
        raise WireError("pylibsrtp's session is not the one the wire needs (1.0)") from None
    room = len(cdata) - trailer
    length = ffi.new("int *")
    errors = pylibsrtp.ERRORS

    def call(data: bytes) -> bytes:
        size = len(data)
        if size > room:
            raise pylibsrtp.Error("packet is too long")
        buffer[0:size] = data
        length[0] = size
        status = c_function(srtp, cdata, length)
        if status:
            raise pylibsrtp.Error(errors[status] if status < len(errors) else str(status))
        return buffer[0 : length[0]]  # type: ignore[no-any-return]

    return call


class _Seen:
    """What aiortc's StreamStatistics reads of a packet."""

    __slots__ = ("sequence_number", "timestamp")

    def __init__(self) -> None:
        self.sequence_number = 0
        self.timestamp = 0


def ntp_now() -> int:
    """The current time as a 64-bit NTP timestamp (what a sender report carries)."""
    return int((time.time() + NTP_OFFSET) * (1 << 32))


def audio_level(profile: int, data: bytes, start: int, end: int, wanted: int) -> int | None:
    """The -dBov of the audio-level element `wanted` of a header extension block (one-byte
    or two-byte form, RFC 8285), None when it is not there."""
    position = start
    if profile == 0xBEDE:
        while position < end:
            first = data[position]
            if first == 0:  # padding
                position += 1
                continue
            element, length = first >> 4, (first & 0x0F) + 1
            if element == 15 or position + length >= end:
                return None  # the end, or an element running past the block
            if element == wanted:
                return data[position + 1] & 0x7F
            position += 1 + length
    elif profile & 0xFFF0 == 0x1000:
        while position + 1 < end:
            element, length = data[position], data[position + 1]
            if element == 0:
                position += 1
                continue
            if position + 2 + length > end:
                return None  # an element running past the block
            if element == wanted and length:
                return data[position + 2] & 0x7F
            position += 2 + length
    return None


class Wire:
    """A connected leg's RTP, both ways (see the module's doc)."""

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._send: Callable[[bytes], None] | None = None
        self._detach: Callable[[], None] | None = None
        self._header = bytearray()
        self._sequence = random.getrandbits(16)
        self._timestamp = random.getrandbits(32)
        self._seen = _Seen()
        self._relaying: set[asyncio.Task[None]] = set()
        # Counts, for the metrics and the tests.
        self.sent = 0
        self.unsent = 0  # pushed while not attached
        self.received = 0
        self.rejected = 0  # failed SRTP's check, malformed, or not the negotiated payload type

    @property
    def attached(self) -> bool:
        return self._send is not None

    def attach(self, transceiver: RTCRtpTransceiver) -> None:
        """Take over the transceiver's RTP (its connection is up); again after a detach."""
        self.detach()
        sender, receiver = transceiver.sender, transceiver.receiver
        dtls = sender.transport
        if not isinstance(dtls, RTCDtlsTransport) or dtls.state != "connected":
            raise WireError("the leg's DTLS transport is not connected")
        connection = getattr(dtls.transport, "_connection", None)
        pair = getattr(connection, "_nominated", {}).get(1)
        streams = getattr(receiver, _RECEIVER_STREAMS, None)
        extensions = getattr(sender, _SENDER_EXTENSIONS, None)
        if pair is None or streams is None or extensions is None or not transceiver._codecs:
            raise WireError("aiortc's transports are not the ones the wire needs (1.16)")
        for name in _SENDER_COUNTS:
            if not hasattr(sender, name):
                raise WireError(f"aiortc's sender has no {name}: the wire needs 1.16")
        payload_type = transceiver._codecs[0].payloadType
        if payload_type is None:
            raise WireError("the leg's codec has no payload type")
        self._header = self._template(payload_type, sender._ssrc, transceiver, extensions)
        self._send = self._sender(dtls, pair, sender)
        self._detach = self._intake(dtls, pair, payload_type, streams, transceiver)

    def detach(self) -> None:
        """Give the RTP back to aiortc (the connection is lost or closing)."""
        detach, self._detach, self._send = self._detach, None, None
        if detach is not None:
            detach()

    # -- out -------------------------------------------------------------------------------

    @staticmethod
    def _template(
        payload_type: int,
        ssrc: int,
        transceiver: RTCRtpTransceiver,
        extensions: HeaderExtensionsMap,
    ) -> bytearray:
        """The header every packet of the leg starts with (marker set, as aiortc sets it on
        a frame's one packet; sequence number and timestamp written per packet)."""
        packet = RtpPacket(payload_type=payload_type, marker=1, ssrc=ssrc)
        packet.extensions.mid = transceiver.mid
        return bytearray(packet.serialize(extensions))

    def _sender(self, dtls: RTCDtlsTransport, pair: Any, sender: Any) -> Callable[[bytes], None]:
        protect = srtp_call(dtls._tx_srtp, "srtp_protect", pylibsrtp.SRTP_MAX_TRAILER_LEN)
        address = pair.remote_addr
        protocol = pair.protocol
        sendto: Callable[[bytes, tuple[str, int]], None]
        if isinstance(protocol, StunProtocol):
            sendto = protocol.transport.sendto
        else:  # a relayed pair (TURN): its send may wait for a channel to be bound
            sendto = self._relayed(protocol)

        header = self._header
        pack = _HEAD.pack_into
        set_count = sender.__setattr__
        ntp_name, rtp_name, octets_name, packets_name = _SENDER_COUNTS

        def send(payload: bytes) -> None:
            sequence, timestamp = self._sequence, self._timestamp
            pack(header, 2, sequence, timestamp)
            sendto(protect(bytes(header) + payload), address)
            self._sequence = (sequence + 1) & 0xFFFF
            self._timestamp = (timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
            set_count(ntp_name, ntp_now())
            set_count(rtp_name, timestamp)
            set_count(octets_name, getattr(sender, octets_name) + len(payload))
            set_count(packets_name, getattr(sender, packets_name) + 1)

        return send

    def _relayed(self, protocol: Any) -> Callable[[bytes, tuple[str, int]], None]:
        def sendto(data: bytes, address: tuple[str, int]) -> None:
            task = asyncio.get_running_loop().create_task(protocol.send_data(data, address))
            self._relaying.add(task)
            task.add_done_callback(self._relaying.discard)

        return sendto

    def push(self, payload: bytes) -> None:
        """One Opus packet (20 ms) to the participant, sent now."""
        send = self._send
        if send is None:
            self.unsent += 1
            return
        try:
            send(payload)
        except (pylibsrtp.Error, OSError):
            self.unsent += 1
            return
        self.sent += 1

    # -- in --------------------------------------------------------------------------------

    def _intake(
        self,
        dtls: RTCDtlsTransport,
        pair: Any,
        payload_type: int,
        streams: dict[int, StreamStatistics],
        transceiver: RTCRtpTransceiver,
    ) -> Callable[[], None]:
        """Hooks the pair's socket (when it is a plain one) for RTP; returns the unhook."""
        protocol = pair.protocol
        if not isinstance(protocol, StunProtocol):
            return lambda: None  # relayed: received packets keep aiortc's path
        level_id = next(
            (e.id for e in transceiver._headerExtensions if e.uri == AUDIO_LEVEL_URI), 0
        )
        unprotect = srtp_call(dtls._rx_srtp, "srtp_unprotect", 0)
        aiortc_path = protocol.datagram_received
        inbox, seen = self._inbox, self._seen
        head, extension = _HEAD.unpack_from, _EXTENSION.unpack_from

        def datagram_received(data: bytes, address: tuple[Any, ...]) -> None:
            # SRTP (not SRTCP: RFC 5761's payload types 192-208 are RTCP's); all else is aiortc's.
            if len(data) < 12 or not 127 < data[0] < 192 or 191 < data[1] < 209:
                aiortc_path(data, address)
                return
            try:
                plain = unprotect(data)
            except pylibsrtp.Error:
                self.rejected += 1
                _FAILED_SRTP.inc()
                return
            first = plain[0]
            position = 12 + 4 * (first & 0x0F)
            end = len(plain) - (plain[-1] if first & 0x20 else 0)
            level = None
            if first & 0x10 and position + 4 <= end:
                profile, words = extension(plain, position)
                block = position + 4
                position = block + 4 * words
                if level_id and position <= end:
                    level = audio_level(profile, plain, block, position, level_id)
            elif first & 0x10:
                position = end + 1  # an extension said to be there and not there
            if position > end or len(plain) < 12:
                self.rejected += 1
                _MALFORMED.inc()
                return
            if plain[1] & 0x7F != payload_type:
                self.rejected += 1
                _FOREIGN.inc()
                return
            sequence, timestamp = head(plain, 2)
            ssrc = int.from_bytes(plain[8:12], "big")
            stream = streams.get(ssrc)
            if stream is None:
                stream = streams[ssrc] = StreamStatistics(SAMPLE_RATE)
            seen.sequence_number, seen.timestamp = sequence, timestamp
            stream.add(seen)  # type: ignore[arg-type]  # what it reads of an RtpPacket
            payload = plain[position:end]
            self.received += 1
            inbox.push(sequence, payload, is_quiet(payload, level))

        setattr(protocol, "datagram_received", datagram_received)  # noqa: B010  # the instance's own

        def unhook() -> None:
            if protocol.__dict__.get("datagram_received") is datagram_received:
                del protocol.datagram_received

        return unhook
