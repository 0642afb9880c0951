"""Loopback ports for the things Terry starts (example services, the demo's server)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port"]

# Linux's default when its setting cannot be read.
_EPHEMERAL = (32768, 60999)
_LOWEST = 10000  # below it: well-known and registered services (9090, 9093, 9100, ...)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now, outside the kernel's ephemeral range.

    A port chosen now is often bound later (``terry init`` picks the example hosts'
    service ports; ``terry example up`` binds them). A port from the ephemeral range may be
    handed meanwhile to any outgoing connection as its local port (a database client's,
    an HTTP client's), and the later bind then fails with "Address already in use". Ports
    outside that range are only ever taken by a bind.
    """
    low, high = _ephemeral()
    pool = [p for p in range(_LOWEST, 65536) if not low <= p <= high]
    for port in random.sample(pool, min(64, len(pool))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # all taken: the kernel's
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ephemeral() -> tuple[int, int]:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        low, high = (int(x) for x in text.split())
    except (OSError, ValueError):
        return _EPHEMERAL
    return low, high
