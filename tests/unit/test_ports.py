"""Ports Terry picks now and binds later (terry.ports): never from the kernel's ephemeral
range, where an outgoing connection could take one in between."""

from __future__ import annotations

import socket
from pathlib import Path

from terry.ports import free_port


def _ephemeral() -> range:
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


def test_a_free_port_is_outside_the_ephemeral_range_and_can_be_bound() -> None:
    ports = {free_port() for _ in range(50)}
    assert not ports & set(_ephemeral())
    assert all(p >= 10000 for p in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", free_port()))  # free when it is said


def test_a_port_held_by_a_listener_is_never_given() -> None:
    held = []
    try:
        for _ in range(20):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", free_port()))
            sock.listen()
            held.append(sock)
        taken = {s.getsockname()[1] for s in held}
        assert len(taken) == 20
        assert not {free_port() for _ in range(50)} & taken
    finally:
        for sock in held:
            sock.close()
