"""What lab tests do to a running lab: run a command on a host over SSH, read a host's disk
usage, ask Prometheus whether an alert fires, wait for something to become true, and run
``terry serve`` for the lab's Alertmanager to post to."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from terry import lab

__all__ = ["TerryServe", "df_percent", "prometheus_alert", "ssh", "wait_for"]

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float, interval: float = 0.25) -> T | None:
    """``probe()``'s first true answer within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def ssh(state: lab.LabState, host: str, *command: str) -> str:
    """``command`` on ``host`` over SSH; its output (a failure fails the test)."""
    proc = subprocess.run(
        [*lab.ssh_argv(state, host), *command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def df_percent(state: lab.LabState, host: str) -> int:
    """How full ``host``'s /srv/data is, in percent, as ``df`` on the host says."""
    lines = ssh(state, host, "df", "-P", "/srv/data").splitlines()
    fields = lines[-1].split()
    assert fields[-1] == "/srv/data", lines
    return int(fields[4].rstrip("%"))


def prometheus_alert(state: lab.LabState, alertname: str, host: str) -> dict[str, Any] | None:
    """The lab Prometheus' firing ``alertname`` for ``host``, if it fires."""
    try:
        response = httpx.get(f"{state.prometheus_url}/api/v1/alerts", timeout=2.0)
    except httpx.HTTPError:
        return None
    for alert in response.json()["data"]["alerts"]:
        labels = alert["labels"]
        if (
            alert["state"] == "firing"
            and labels.get("alertname") == alertname
            and labels.get("host") == host
        ):
            return alert
    return None


class TerryServe:
    """``terry serve`` (a real process) on a port chosen before the lab is up, so the lab's
    Alertmanager can be pointed at it; its output in ``serve.log`` beside the repository."""

    def __init__(self, repo: Path, port: int, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = repo.parent / "serve.log"
        argv = [sys.executable, "-m", "terry", "--repo", str(repo), "serve"]
        self.proc = subprocess.Popen(
            [*argv, "--listen", f"127.0.0.1:{port}"],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
        if not wait_for(self._healthy, 30):
            self.stop()
            raise AssertionError(f"terry serve did not come up:\n{self.log.read_text()}")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(60)
