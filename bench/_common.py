"""Shared helpers for the bench scripts: a throw-away GitOps repository, payloads, tables.

Not a benchmark itself. Every script imports it as ``_common`` (``python bench/<name>.py``
puts ``bench/`` first on ``sys.path``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from terry.gitops.init import init_repository

BIN = Path(sys.executable).parent
TERRY = str(BIN / "terry")
ANSIBLE_PLAYBOOK = str(BIN / "ansible-playbook")
HOSTS = ("web-01", "web-02", "db-01")


def terry(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The real ``terry`` CLI as a subprocess."""
    done = subprocess.run(
        [TERRY, "--repo", str(repo), *args], capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"terry {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


@contextmanager
def gitops_repo(name: str, *, example: bool = True) -> Iterator[Path]:
    """``terry init`` in a temp dir, the example hosts up; afterwards down and removed."""
    scratch = Path(tempfile.mkdtemp(prefix=f"terry-bench-{name}-"))
    repo = init_repository(scratch / "ops").path
    try:
        if example:
            terry(repo, "example", "up")
        yield repo
    finally:
        if example:
            terry(repo, "example", "down", check=False)
        shutil.rmtree(scratch, ignore_errors=True)


def export(repo: Path, commit: str, target: Path) -> Path:
    """``git archive COMMIT | tar -x -C TARGET``: the exact tree of one commit."""
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", commit], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


@dataclass(frozen=True)
class Replay:
    """One Terry run's exact ansible-playbook invocation, re-pointed at another export.

    Read from the run's ansible-runner artifacts (``artifacts/*/command``: argv and cwd;
    ``env/envvars`` and ``env/cmdline``: what Terry's applier passed), so a by-hand run
    uses the same flags and the same environment as Terry's, whatever the applier sets.
    """

    argv: list[str]  # ansible-playbook ... PLAYBOOK
    cmdline: str  # the applier's extra arguments (-i, -e, --check, --diff, --tags)
    env: dict[str, str]  # the applier's envvars (not the ones ansible-runner adds)
    limit: str
    forks: int
    playbook: str
    tree: Path

    @classmethod
    def of_run(cls, run_dir: Path, tree: Path) -> Replay:
        command = json.loads(next(run_dir.glob("artifacts/*/command")).read_text())
        old = str(command["cwd"])

        def moved(text: str) -> str:
            return text.replace(old, str(tree))

        argv = [moved(a) for a in command["command"]]
        argv[0] = str(BIN / "ansible-playbook")
        envvars = yaml.safe_load((run_dir / "env" / "envvars").read_text())
        return cls(
            argv=argv,
            cmdline=moved((run_dir / "env" / "cmdline").read_text()),
            env={k: moved(str(v)) for k, v in envvars.items()},
            limit=argv[argv.index("--limit") + 1] if "--limit" in argv else "",
            forks=int(argv[argv.index("--forks") + 1]),
            playbook=argv[-1],
            tree=tree,
        )

    def run_plain(self) -> str:
        """``ansible-playbook`` as a subprocess from the export; its stdout."""
        env = {**os.environ, **self.env}
        done = subprocess.run(
            self.argv, cwd=self.tree, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            why = [ln for ln in done.stdout.splitlines() if ln.startswith(("fatal:", "failed:"))]
            raise RuntimeError(
                f"ansible-playbook exited {done.returncode}: "
                + ("\n".join(why[:10]) or done.stdout[-2000:])
            )
        return done.stdout


def alert(fingerprint: str, host: str, *, starts: str = "2026-11-24T10:00:00Z") -> dict[str, Any]:
    """One firing DiskUsageHigh alert, shaped like Alertmanager's (tests/conftest.py)."""
    return {
        "status": "firing",
        "labels": {"alertname": "DiskUsageHigh", "host": host, "mountpoint": "/srv/data"},
        "annotations": {"summary": f"/srv/data on {host} is 92% full"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def payload(alerts: list[dict[str, Any]]) -> str:
    """An Alertmanager webhook v4 body."""
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="DiskUsageHigh"}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "terry",
            "groupLabels": {"alertname": "DiskUsageHigh"},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": alerts,
        }
    )


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_note() -> str:
    """The machine's load average: other work on a shared 2-core machine skews figures."""
    one, five, _fifteen = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} CPUs"


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    return str(value)
