"""Breaking lab hosts on purpose (and mending them), so that real alerts fire.

``disk`` fills the host's ``/srv/data`` the way a runaway application does: rotated,
very compressible logs in ``/srv/data/log/app.log.N`` (a log-compression fix really frees
space) and stale files in ``/srv/data/tmp/`` last modified 30 days ago (a clean-up fix
finds them by age). ``service`` stops the host's ``web`` service. ``network`` takes the
host's link to the lab bridge down: the host is up but unreachable (SSH and scrapes time out).

Files are written from the machine through ``/proc/<host pid 1>/root``, which resolves
paths in the host's mount namespace: the bytes land on that host's volume only.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import time
from enum import StrEnum
from pathlib import Path

import httpx

from terry.errors import InputError, StateError
from terry.lab.hosts import TERRY_SVC, host_exec
from terry.lab.model import BreakResult, LabHost, LabState
from terry.lab.procs import process_alive, run

__all__ = ["FaultKind", "break_host", "heal_host", "used_percent"]

_MIB = 1024 * 1024
_LOG_FILE_MIB = 4
_TMP_FILES = 3
_TMP_FILE_MIB = 1
_TMP_AGE_DAYS = 30


class FaultKind(StrEnum):
    DISK = "disk"
    SERVICE = "service"
    MEMORY = "memory"
    NETWORK = "network"


# What a memory fault makes the web service hold: above ProcessMemoryHigh's 128 MiB.
MEMORY_FAULT_MIB = 200


def used_percent(path: Path) -> float:
    """Used space as ``df`` computes it: used / (used + available to users)."""
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    return 100.0 * used / (used + avail) if used + avail else 0.0


def _log_chunk(host: str) -> bytes:
    """One MiB of realistic, highly compressible application log lines."""
    lines = []
    size = 0
    n = 0
    while size < _MIB:
        line = (
            f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z INFO app[{host}] request "
            f"id={n:08d} method=GET path=/api/items status=200 duration_ms={n % 97} "
            f"user_agent=terry-lab/1.0\n"
        )
        lines.append(line)
        size += len(line)
        n += 1
    return "".join(lines).encode()[:_MIB]


def _write_file(path: Path, chunk: bytes, mib: int) -> bool:
    """Write ``mib`` chunks; False when the volume filled up first (what was written stays)."""
    try:
        with open(path, "wb") as fh:
            for _ in range(mib):
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        return False
    return True


def _live_host(state: LabState, name: str) -> LabHost:
    if os.geteuid() != 0:
        raise StateError("lab hosts are reached through their namespaces: run this as root")
    host = state.host(name)
    if not process_alive(host.holder):
        raise StateError(f"lab host {name} is not running; run 'terry lab down' and 'up'")
    return host


def _fill_disk(host: LabHost, percent: float) -> BreakResult:
    data = host.data_path
    before = used_percent(data)
    written: list[str] = []
    tmp = data / "tmp"
    tmp.mkdir(exist_ok=True)
    old = time.time() - _TMP_AGE_DAYS * 86400
    for i in range(1, _TMP_FILES + 1):
        path = tmp / f"upload-{i:03d}.tmp"
        if not path.exists():
            _write_file(path, os.urandom(_MIB), _TMP_FILE_MIB)
            written.append(str(path))
        os.utime(path, (old, old))
    logs = data / "log"
    logs.mkdir(exist_ok=True)
    current = logs / "app.log"
    if not current.exists():
        current.write_bytes(_log_chunk(host.name)[: 64 * 1024])
        written.append(str(current))
    chunk = _log_chunk(host.name)
    index = 1
    while used_percent(data) < percent:
        while (logs / f"app.log.{index}").exists():
            index += 1
        st = os.statvfs(data)
        total = (st.f_blocks - st.f_bfree + st.f_bavail) * st.f_frsize
        missing = percent / 100.0 * total - (st.f_blocks - st.f_bfree) * st.f_frsize
        mib = max(1, min(_LOG_FILE_MIB, math.ceil(missing / _MIB)))
        path = logs / f"app.log.{index}"
        written.append(str(path))
        full = not _write_file(path, chunk, mib)
        rotated = time.time() - index * 3600  # hourly rotation: app.log.N is N hours old
        os.utime(path, (rotated, rotated))
        if full:
            break
    os.sync()
    after = used_percent(data)
    return BreakResult(
        host=host.name,
        kind=FaultKind.DISK.value,
        detail=f"/srv/data {before:.0f}% -> {after:.0f}% used ({len(written)} files written)",
        used_percent_before=round(before, 1),
        used_percent_after=round(after, 1),
        files=tuple(p.replace(str(data), "/srv/data", 1) for p in written),
    )


def _svc(host: LabHost, command: str) -> str:
    if not host.services:
        raise StateError(f"lab host {host.name} runs no service")
    service = host.services[0]
    argv = [str(TERRY_SVC), command, service.name]
    if command == "start":
        argv += ["--port", str(service.port), "--bind", service.bind]
    return host_exec(host, [*argv, "--root", "/"]).stdout.strip()


def _hoard(host: LabHost) -> str:
    """Ask the web service to hold memory (its ``/debug/alloc``), over the lab bridge."""
    if not host.services:
        raise StateError(f"lab host {host.name} runs no service")
    service = host.services[0]
    url = f"http://{service.bind}:{service.port}/debug/alloc?mb={MEMORY_FAULT_MIB}"
    try:
        answer = httpx.get(url, timeout=30)
        answer.raise_for_status()
    except httpx.HTTPError as exc:
        raise StateError(f"{host.name}: {service.name} did not take the memory: {exc}") from exc
    return f"{service.name} on {host.name}: {answer.text.strip()}"


def _link(host: LabHost, state: str) -> str:
    run(["ip", "link", "set", host.veth, state])
    return f"{host.name}: link {host.veth} to the lab bridge {state}"


def break_host(
    state: LabState, host: str, kind: FaultKind | str, *, percent: float = 95.0
) -> BreakResult:
    """Make ``host`` unhealthy: fill its disk to ``percent``, stop its service, or make the
    service hold memory (``memory``: ProcessMemoryHigh fires)."""
    try:
        kind = FaultKind(kind)
    except ValueError as exc:
        raise InputError(f"unknown fault {kind!r}: use disk, service, memory or network") from exc
    if not 1 <= percent <= 100:
        raise InputError(f"--percent must be between 1 and 100, not {percent}")
    target = _live_host(state, host)
    if kind is FaultKind.DISK:
        return _fill_disk(target, percent)
    if kind is FaultKind.MEMORY:
        return BreakResult(host=host, kind=kind.value, detail=_hoard(target))
    if kind is FaultKind.NETWORK:
        return BreakResult(host=host, kind=kind.value, detail=_link(target, "down"))
    return BreakResult(host=host, kind=kind.value, detail=_svc(target, "stop"))


def heal_host(state: LabState, host: str, kind: FaultKind | str) -> BreakResult:
    """Undo :func:`break_host`: remove the filler files, or start the service again."""
    try:
        kind = FaultKind(kind)
    except ValueError as exc:
        raise InputError(f"unknown fault {kind!r}: use disk, service, memory or network") from exc
    target = _live_host(state, host)
    if kind is FaultKind.NETWORK:
        return BreakResult(host=host, kind=kind.value, detail=_link(target, "up"))
    if kind is FaultKind.SERVICE:
        return BreakResult(host=host, kind=kind.value, detail=_svc(target, "start"))
    if kind is FaultKind.MEMORY:
        _svc(target, "stop")
        return BreakResult(host=host, kind=kind.value, detail=_svc(target, "start"))
    data = target.data_path
    before = used_percent(data)
    removed: list[str] = []
    for sub in ("log", "tmp"):
        path = data / sub
        if path.exists():
            removed.append(f"/srv/data/{sub}")
            shutil.rmtree(path)
    with contextlib.suppress(OSError):
        os.sync()
    after = used_percent(data)
    return BreakResult(
        host=host,
        kind=kind.value,
        detail=f"/srv/data {before:.0f}% -> {after:.0f}% used",
        used_percent_before=round(before, 1),
        used_percent_after=round(after, 1),
        files=tuple(removed),
    )
