"""Opus for the mixer: libopus called directly, one 20 ms frame of 48 kHz mono at a time.

Why not through PyAV's codec contexts (what aiortc uses): each call there builds a frame or
packet object and goes through the generic codec API, which costs about as much as the
coding itself (measured on this project's 2-core machine: encode ~115 µs a frame through
PyAV, ~60 µs direct; decode ~32 µs against ~23 µs); and that API has no way to ask for
packet-loss concealment, which the mixer needs when a participant's packet is late. The
library is the one PyAV itself ships and has already loaded (found beside its package), or
else the system's.

Encoder settings, measured (µs a frame, 32 kbit/s mono, tone / noise / digital silence):
application "voip" at complexity 10: 60 / 87 / 180 (it switches to SILK for quiet input,
which is the dearest); lowering its complexity makes it slower, not faster (SILK is picked
more often). "Restricted low delay" (CELT only) at complexity 5: 39 / 62 / 26, with 2.5 ms
less algorithmic delay. So the mixer encodes CELT only at complexity 5; a client's decoder
takes it as any Opus stream (the rtpmap stays opus/48000/2; mono needs no signalling).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path
from typing import Any, Final

import av
import numpy as np

SAMPLE_RATE: Final = 48_000
FRAME_SAMPLES: Final = 960  # 20 ms
BITRATE: Final = 32_000
COMPLEXITY: Final = 5
MAX_PACKET: Final = 1_275  # the largest Opus frame (RFC 6716, 3.2.1)

APPLICATION_VOIP: Final = 2048
APPLICATION_RESTRICTED_LOWDELAY: Final = 2051
_SET_BITRATE: Final = 4002
_SET_COMPLEXITY: Final = 4010
_RESET_STATE: Final = 4028

Pcm = np.ndarray[Any, np.dtype[np.int16]]


class OpusError(RuntimeError):
    """libopus refused a call (the code's text from opus_strerror)."""


def _candidates() -> list[str]:
    # PyAV's wheel keeps its libraries in a folder beside the package ("av.libs").
    bundled = Path(av.__file__).resolve().parent.parent / "av.libs"
    found = sorted(str(p) for p in bundled.glob("libopus*.so*"))
    system = ctypes.util.find_library("opus")
    return [*found, *([system] if system else [])]


def _load() -> ctypes.CDLL:
    errors = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            errors.append(str(exc))
            continue
        _declare(lib)
        return lib
    raise OpusError(f"no Opus library could be loaded ({'; '.join(errors) or 'none found'})")


def _declare(lib: ctypes.CDLL) -> None:
    p, i, i32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int32
    lib.opus_encoder_create.argtypes = [i32, i, i, ctypes.POINTER(i)]
    lib.opus_encoder_create.restype = p
    lib.opus_encoder_destroy.argtypes = [p]
    lib.opus_encoder_destroy.restype = None
    lib.opus_encoder_ctl.argtypes = [p, i]  # variadic: the value is passed as a c_int
    lib.opus_encoder_ctl.restype = i
    lib.opus_encode.argtypes = [p, p, i, p, i32]
    lib.opus_encode.restype = i32
    lib.opus_decoder_create.argtypes = [i32, i, ctypes.POINTER(i)]
    lib.opus_decoder_create.restype = p
    lib.opus_decoder_destroy.argtypes = [p]
    lib.opus_decoder_destroy.restype = None
    lib.opus_decoder_ctl.argtypes = [p, i]
    lib.opus_decoder_ctl.restype = i
    lib.opus_decode.argtypes = [p, ctypes.c_char_p, i32, p, i, i]
    lib.opus_decode.restype = i
    lib.opus_strerror.argtypes = [i]
    lib.opus_strerror.restype = ctypes.c_char_p


_lib = _load()


def _check(code: int, what: str) -> int:
    if code < 0:
        message = _lib.opus_strerror(code)
        raise OpusError(f"{what}: {message.decode() if message else code}")
    return code


class OpusEncoder:
    """Encodes 20 ms frames of 48 kHz mono int16 into Opus packets."""

    def __init__(
        self,
        *,
        bitrate: int = BITRATE,
        complexity: int = COMPLEXITY,
        application: int = APPLICATION_RESTRICTED_LOWDELAY,
    ) -> None:
        error = ctypes.c_int()
        handle = _lib.opus_encoder_create(SAMPLE_RATE, 1, application, ctypes.byref(error))
        _check(error.value, "opus_encoder_create")
        self._handle: int | None = handle
        self._out = ctypes.create_string_buffer(MAX_PACKET)
        self._ctl(_SET_BITRATE, bitrate)
        self._ctl(_SET_COMPLEXITY, complexity)

    def _ctl(self, request: int, *value: int) -> None:
        _check(
            _lib.opus_encoder_ctl(self._handle, request, *(ctypes.c_int(v) for v in value)),
            "opus_encoder_ctl",
        )

    def encode(self, pcm: Pcm) -> bytes:
        """One packet for one frame (`pcm`: FRAME_SAMPLES contiguous int16)."""
        if pcm.dtype != np.int16 or pcm.shape != (FRAME_SAMPLES,) or not pcm.flags.c_contiguous:
            raise ValueError("a frame is 960 contiguous int16 samples")
        size = _check(
            _lib.opus_encode(self._handle, pcm.ctypes.data, FRAME_SAMPLES, self._out, MAX_PACKET),
            "opus_encode",
        )
        return self._out.raw[:size]

    def reset(self) -> None:
        """Forget the past (a stream that starts again after a pause)."""
        self._ctl(_RESET_STATE)

    def __del__(self) -> None:
        if self._handle is not None:
            _lib.opus_encoder_destroy(self._handle)
            self._handle = None


class OpusDecoder:
    """Decodes one participant's Opus packets (mono or stereo) into 48 kHz mono int16.

    The frame returned is the decoder's own buffer, overwritten by the next call: copy it to
    keep it."""

    def __init__(self) -> None:
        error = ctypes.c_int()
        handle = _lib.opus_decoder_create(SAMPLE_RATE, 1, ctypes.byref(error))
        _check(error.value, "opus_decoder_create")
        self._handle: int | None = handle
        # Room for the longest Opus packet (120 ms), though WebRTC senders send 20 ms.
        self._pcm: Pcm = np.zeros(FRAME_SAMPLES * 6, dtype=np.int16)
        self._address = self._pcm.ctypes.data

    def decode(self, payload: bytes) -> Pcm:
        """The frame a packet carries; a packet of another duration than 20 ms is cut or
        padded with silence (the mixer works in 20 ms frames)."""
        count = _check(
            _lib.opus_decode(self._handle, payload, len(payload), self._address, len(self._pcm), 0),
            "opus_decode",
        )
        return self._frame(count)

    def conceal(self) -> Pcm:
        """The libopus guess at a lost 20 ms frame (continues the last sound, fading)."""
        count = _check(
            _lib.opus_decode(self._handle, None, 0, self._address, FRAME_SAMPLES, 0),
            "opus_decode (concealment)",
        )
        return self._frame(count)

    def _frame(self, count: int) -> Pcm:
        if count < FRAME_SAMPLES:
            self._pcm[count:FRAME_SAMPLES] = 0
        return self._pcm[:FRAME_SAMPLES]

    def reset(self) -> None:
        _check(_lib.opus_decoder_ctl(self._handle, _RESET_STATE), "opus_decoder_ctl")

    def __del__(self) -> None:
        if self._handle is not None:
            _lib.opus_decoder_destroy(self._handle)
            self._handle = None


def silent_packet() -> bytes:
    """The packet of a silent frame, from a fresh encoder: what a listener with no one to
    hear is sent, so silence costs no encoding (the same bytes for everyone)."""
    encoder = OpusEncoder()
    zeros: Pcm = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    packet = b""
    for _ in range(3):  # past the encoder's start-up frames
        packet = encoder.encode(zeros)
    return packet
