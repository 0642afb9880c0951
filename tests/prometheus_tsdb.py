"""A real Prometheus for the tests (no root): ``running_prometheus`` starts Debian's binary
on loopback with a given config and waits until it answers; ``backfilled_prometheus`` serves
known history, for tests that read weeks of metrics.

The history is written as OpenMetrics text, turned into TSDB blocks by ``promtool tsdb
create-blocks-from openmetrics`` (few large blocks, ``--max-block-duration=720h``: 2-hour
ones, the default, take promtool 20 s for 30 days) and served by Debian's ``prometheus`` on
loopback. Used by the SLO and the cost tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from terry.ports import free_port

__all__ = [
    "NEEDS_PROMETHEUS",
    "answers",
    "backfilled_prometheus",
    "openmetrics",
    "running_prometheus",
    "self_signed",
]

NEEDS_PROMETHEUS = pytest.mark.skipif(
    not os.environ.get("CI")
    and (shutil.which("prometheus") is None or shutil.which("promtool") is None),
    reason="needs Debian's prometheus and promtool (scripts/test.sh installs them)",
)


def openmetrics(families: dict[str, str], lines: list[str]) -> str:
    """An OpenMetrics document: ``families`` (name -> type: a counter family ``x`` holds the
    samples ``x_total``), then the sample ``lines`` (``name{labels} value timestamp``), in
    time order per series. OpenMetrics wants a family's samples together and each series'
    samples together: sorted by series, stable in time."""
    body: list[str] = []
    for name, kind in families.items():
        names = {name, f"{name}_total"}
        mine = [line for line in lines if line.split("{")[0].split(" ")[0] in names]
        body += [f"# TYPE {name} {kind}", *sorted(mine, key=lambda line: line.split(" ")[0])]
    return "\n".join([*body, "# EOF"]) + "\n"


@contextmanager
def backfilled_prometheus(home: Path, document: str, ready_query: str) -> Iterator[str]:
    """Prometheus serving ``document`` (OpenMetrics) from ``home``; its URL once
    ``ready_query`` answers with data."""
    (home / "data.om").write_text(document)
    subprocess.run(
        [
            *("promtool", "tsdb", "create-blocks-from", "openmetrics", "-q"),
            *("--max-block-duration=720h", "data.om", "data"),
        ],
        cwd=home,
        check=True,
        capture_output=True,
    )
    with running_prometheus(
        home,
        "global: {scrape_interval: 15s}\nscrape_configs: []\n",
        ready=lambda url: answers(url, ready_query),
        extra=("--storage.tsdb.retention.time=60d",),
        why="prometheus did not come up with the backfilled data",
    ) as url:
        yield url


def answers(url: str, query: str, *, verify: bool = True) -> bool:
    """Whether ``query`` has data at ``url`` now (False while Prometheus cannot say)."""
    try:
        found = httpx.get(
            f"{url}/api/v1/query", params={"query": query}, timeout=1, verify=verify
        ).json()
        return bool(found["data"]["result"])
    except (httpx.HTTPError, KeyError, ValueError):
        return False


@contextmanager
def running_prometheus(
    home: Path,
    config: str,
    *,
    ready: Callable[[str], bool],
    port: int | None = None,
    scheme: str = "http",
    extra: Sequence[str] = (),
    why: str = "prometheus did not come up",
) -> Iterator[str]:
    """Prometheus with ``config`` (its prometheus.yml) and its data in ``home``, on
    ``port`` (a free one by default); its URL once ``ready(url)`` holds (60 s at most),
    stopped afterwards."""
    (home / "prometheus.yml").write_text(config)
    port = port or free_port()
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not ready(url):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(why)
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def self_signed(home: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (``CN=prometheus.test``, a day), in ``home``: a
    server's own, the CA a client must be told to trust."""
    cert, key = home / "cert.pem", home / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=prometheus.test", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key
