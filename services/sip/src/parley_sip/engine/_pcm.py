"""Fast copies between Python bytes and pjsua2's ``ByteVector`` (``MediaFrame.buf``).

SWIG converts a ``std::vector<unsigned char>`` element by element (about 1.4 ms for one
20 ms frame at 48 kHz); a media callback cannot afford that for every leg. The vector's
first word is its data pointer (libstdc++, libc++ and MSVC release builds all start with
it), so ctypes copies the bytes in a few microseconds. ``check_layout`` verifies that once
at start; when it does not hold, the slow element-wise path is used.
"""

from __future__ import annotations

import ctypes
from typing import Any

_fast = False


def _data_ptr(vec: Any) -> int:
    ptr = ctypes.c_void_p.from_address(int(vec.this)).value
    return int(ptr or 0)


def check_layout(pj: Any) -> bool:
    """Verify the pointer layout on a probe vector and enable the fast path if it holds."""
    global _fast
    probe = bytes(range(256)) * 4
    try:
        vec = pj.ByteVector(probe)
        ok = ctypes.string_at(_data_ptr(vec), len(probe)) == probe
        other = pj.ByteVector()
        other.resize(len(probe))
        ctypes.memmove(_data_ptr(other), probe[::-1], len(probe))
        ok = ok and bytes(other) == probe[::-1]
    except Exception:
        ok = False
    _fast = ok
    return ok


def read(vec: Any, size: int) -> bytes:
    """The first ``size`` bytes of ``vec``."""
    size = min(size, int(vec.size()))
    if size <= 0:
        return b""
    if _fast:
        return ctypes.string_at(_data_ptr(vec), size)
    return bytes(vec)[:size]


def write(vec: Any, data: bytes) -> None:
    """Make ``vec`` hold exactly ``data``."""
    if _fast:
        vec.resize(len(data))
        if data:
            ctypes.memmove(_data_ptr(vec), data, len(data))
        return
    vec.assign(len(data), 0)
    for i, b in enumerate(data):
        vec[i] = b
