"""Running commands and keeping track of the processes the lab starts.

Every command is an argument list (never a shell string). A process is ours only when
its pid *and* its start time match what was recorded, so a reused pid is never killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from terry.lab.model import LabError, LabProcess

__all__ = [
    "HOST_ENV",
    "http_ok",
    "process_alive",
    "run",
    "spawn",
    "start_time",
    "stop_pid",
    "stop_process",
    "tcp_open",
    "wait_until",
]

# The environment of everything started on a lab host: no virtualenv on PATH, so
# `#!/usr/bin/env python3` is the machine's /usr/bin/python3, as on a real host.
HOST_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}


_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def search_path() -> str:
    """PATH plus the sbin directories: root tools (losetup, mkfs, sshd) live there, and a
    caller's PATH (a CI job, ``env -i``) may not list them."""
    current = [p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p]
    return os.pathsep.join([*current, *(d for d in _SBIN if d not in current)])


def resolve(command: str) -> str | None:
    """The full path of ``command`` on :func:`search_path`, or None."""
    return shutil.which(command, path=search_path())


def argv_of(argv: Sequence[str]) -> list[str]:
    items = list(argv)
    if items and "/" not in items[0]:
        items[0] = resolve(items[0]) or items[0]
    return items


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; a failure (when ``check``) is a :class:`LabError`."""
    try:
        proc = subprocess.run(
            argv_of(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]}: not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)}: timed out after {timeout:.0f}s") from exc
    if check and proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip().splitlines()
        tail = message[-1] if message else f"exit {proc.returncode}"
        raise LabError(f"{' '.join(argv)}: {tail}")
    return proc


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks, or None when it is gone (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # Fields after the command name, which is in parentheses and may hold spaces.
    rest = stat.rsplit(")", 1)[1].split()
    if rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def process_alive(proc: LabProcess | None) -> bool:
    return proc is not None and start_time(proc.pid) == proc.start_time


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
) -> LabProcess:
    """Start a long-lived process that outlives this one (own session, stdio to ``log``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            child = subprocess.Popen(
                argv_of(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env=dict(env) if env is not None else dict(HOST_ENV),
            )
        except OSError as exc:
            raise LabError(f"{name}: cannot start {argv[0]}: {exc}") from exc
    # The Popen object is dropped on purpose: the process must outlive us. Python keeps
    # a list of such children and reaps them, so none stays a zombie while we live.
    started = start_time(child.pid)
    if started is None:
        raise LabError(f"{name} exited at once; see {log}")
    return LabProcess(name, child.pid, started)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_pid(
    pid: int, *, expected_start: int | None, timeout: float = 5.0, graceful: bool = True
) -> bool:
    """SIGTERM, wait, SIGKILL (only SIGKILL unless ``graceful``); only if the pid still
    is the process we started. Returns True when something was stopped.
    """
    now = start_time(pid)
    if now is None or (expected_start is not None and now != expected_start):
        _reap(pid)
        return False
    steps = [(signal.SIGTERM, timeout)] if graceful else []
    for sig, wait in [*steps, (signal.SIGKILL, 5.0)]:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if start_time(pid) != now:
                return True
            time.sleep(0.05)
    _reap(pid)
    if start_time(pid) == now:
        raise LabError(f"pid {pid} did not stop")
    return True


def stop_process(proc: LabProcess | None, *, timeout: float = 5.0, graceful: bool = True) -> bool:
    if proc is None:
        return False
    return stop_pid(proc.pid, expected_start=proc.start_time, timeout=timeout, graceful=graceful)


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``check()`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
