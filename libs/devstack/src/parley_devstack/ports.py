"""Local TCP port helpers (loopback only)."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that is free right now.

    The kernel picks it; nothing holds it afterwards, so a caller that loses the race
    (another process binds it first) should retry with a new port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if a server could listen on ``host:port`` now (SO_REUSEADDR, like most servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def preferred_port(port: int, host: str = LOOPBACK) -> int:
    """``port`` if it is free, else a free port chosen by the kernel."""
    return port if port_is_free(port, host) else free_port(host)
