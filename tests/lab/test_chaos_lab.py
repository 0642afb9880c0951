"""Issue 20's lab test: chaos experiments against a real ``terry serve`` on the lab.

A scheduled experiment (``terry schedule run``, a ``run: chaos`` schedule) fills a staging
host's data disk; Prometheus fires, Alertmanager posts, Terry cleans the disk and verifies;
the run records its target, MTTR and phases, and the resilience report shows it. An
experiment Terry has no answer for (CPU stress: no alert watches it) ends undetected with
its workers killed. A run killed mid-way (SIGKILL) leaves its fault on the host until the
next start removes it. Production (lab-01) is never drawn, and refused when named. Every
other fault goes in and out through the ``chaos`` role and is seen on the host in between.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from terry import lab
from terry.chaos.ansible import FaultRun, run_fault
from terry.config import CONFIG_FILE
from terry.gitops.init import init_repository
from terry.gitops.repo import Repo
from terry.ports import free_port
from terry.store import Store
from terry.store.models import AuditRow, ChaosRunRow
from tests.conftest import REPO_ROOT
from tests.lab.helpers import TerryServe, df_percent, ssh, wait_for

NEEDS = [
    "/usr/sbin/sshd",
    "/usr/bin/prometheus",
    "/usr/bin/prometheus-alertmanager",
    "/usr/bin/prometheus-node-exporter",
]
NAMES = {
    "bridge": "terrylabk0",
    "subnet": "10.91.0.0/24",
    "netns_prefix": "terrychaos-",
    "veth_prefix": "tlabk",
    # tmpfs, as CI's machine has it: a cleanup frees tmpfs at once, and a verify that judged
    # Prometheus' sample from mid-cleanup rolled a working fix back there (never on ext4).
    "data_volume": "tmpfs",
}
WEBHOOK_TOKEN = "lab-webhook-token-of-the-chaos-test"
EXAMPLES = REPO_ROOT / "examples" / "experiments"
FAULT_HOST = "lab-03"  # staging, as a drawn target would be


def _terry(repo: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "terry", "--repo", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _configure(repo: Path, state: lab.LabState) -> None:
    path = repo / CONFIG_FILE
    settings = yaml.safe_load(path.read_text()) or {}
    settings["inventory"] = ["inventories/lab"]
    settings["prometheus"] = {"url": state.prometheus_url, "timeout": 5}
    settings["chaos"] = {"mttr_threshold": "1s"}  # every run notifies: chaos-slow is written
    settings["schedules"] = [
        {"name": "chaos-disk", "interval": 604800, "run": "chaos", "experiment": "disk-fill"}
    ]
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    experiments = repo / "experiments"
    experiments.mkdir(exist_ok=True)
    shutil.copy(EXAMPLES / "disk-fill.yaml", experiments)
    cpu = json.loads((EXAMPLES / "cpu-stress.json").read_text())
    cpu["extensions"][0]["resolve_within"] = 4  # nothing will come: do not wait a minute
    (experiments / "cpu-stress.json").write_text(json.dumps(cpu))
    cpu["extensions"][0]["resolve_within"] = 300  # killed long before
    (experiments / "cpu-stress-long.json").write_text(json.dumps(cpu))
    Repo(repo).commit_paths(
        [CONFIG_FILE, "inventories/lab", "experiments"], "lab: the chaos test's settings"
    )


@pytest.fixture(scope="module")
def chaos_lab(
    tmp_path_factory: pytest.TempPathFactory, lab_config: lab.LabConfig
) -> Iterator[tuple[Path, lab.LabState]]:
    """One lab for the module: bringing one up costs more than a test's body."""
    repo = init_repository(tmp_path_factory.mktemp("chaos") / "ops", example=False).path
    port = free_port()
    lab.down(lab_config)  # leftovers of an interrupted earlier run
    state = lab.up(
        lab_config,
        hosts=3,
        repo=repo,
        webhook_url=f"http://127.0.0.1:{port}/api/v1/alerts",
        webhook_token=WEBHOOK_TOKEN,
    )
    server = None
    try:
        # the data volumes are tmpfs, as this module's lab asked (CI's kind)
        mounted = ssh(state, FAULT_HOST, "findmnt", "-n", "-o", "FSTYPE", "/srv/data").strip()
        assert mounted == "tmpfs"
        assert all(h.loop_device == "" for h in state.hosts)
        _configure(repo, state)
        server = TerryServe(repo, port, {"TERRY_WEBHOOK_TOKEN": WEBHOOK_TOKEN})
        yield repo, state
    finally:
        if server is not None:
            server.stop()
        report = lab.down(lab_config)
        assert not report.problems, report.problems


def _runs(repo: Path) -> list[ChaosRunRow]:
    from terry.chaos.journal import runs
    from terry.config import load_config

    store = Store(load_config(repo).store_url)
    try:
        return runs(store)
    finally:
        store.dispose()


def _audit(repo: Path) -> list[AuditRow]:
    from terry.config import load_config

    store = Store(load_config(repo).store_url)
    try:
        with store.session() as session:
            return list(session.scalars(select(AuditRow).where(AuditRow.entity == "chaos")))
    finally:
        store.dispose()


def _workers(state: lab.LabState, host: str) -> str:
    """The pids of CPU stress workers still alive ("" when none). The pattern is written
    so that it does not match the remote shell running pgrep."""
    return ssh(state, host, "pgrep -f 'end=time[.]time' || true").strip()


def test_chaos_experiments_measure_terry_and_always_clean_up(
    chaos_lab: tuple[Path, lab.LabState],
) -> None:
    repo, state = chaos_lab
    started = time.monotonic()

    # Production is never a target: named, it is refused (exit 5) before anything runs.
    refused = _terry(repo, "chaos", "run", "disk-fill", "--target", "lab-01")
    assert refused.returncode == 5, refused.stderr
    assert "lab-01 may not be a chaos target: environment production" in refused.stderr

    # The scheduled experiment: a staging disk filled, fixed by terry serve, measured.
    done = _terry(repo, "schedule", "run", "chaos-disk", "-o", "json", timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    [run] = _runs(repo)
    assert run.environment == "staging" and run.target != "lab-01", run.target
    assert run.outcome == "resolved", (run.outcome, run.detail, done.stdout, done.stderr)
    assert run.truth == "healthy" and run.removed_at is not None
    assert run.incident_id and run.proposal_id and run.decision == "merge"
    marks = [run.injected_at, run.alert_at, run.decided_at, run.applied_at, run.verified_at]
    assert all(marks) and marks == sorted(marks), marks
    assert run.removed_at > run.verified_at
    assert df_percent(state, run.target) < 80
    assert "resolved" in json.loads(done.stdout)["detail"]
    # chaos.mttr_threshold is 1s here: the team is told (the notifier's chaos-slow event)
    assert [(a.entity_id, a.to_state) for a in _audit(repo)] == [(run.id, "slow")]
    print(f"\ndisk-fill: MTTR {(run.verified_at - run.injected_at).total_seconds():.1f}s")

    report = _terry(repo, "chaos", "report", "--format", "json")
    assert report.returncode == 0, report.stderr
    body = json.loads(report.stdout)
    assert body["resolved"] == 1 and body["auto_resolution_rate"] == 1.0
    [disk] = body["faults"]
    assert disk["fault"] == "disk-fill" and disk["points"][0]["mttr"] > 0
    assert body["slowest_phase"] in ("detect", "decide", "apply", "verify")

    # A fault Terry has no answer for: undetected, and its workers are gone afterwards.
    cpu = _terry(repo, "chaos", "run", "cpu-stress", "-o", "json")
    assert cpu.returncode == 1, cpu.stdout + cpu.stderr
    [result] = json.loads(cpu.stdout)["runs"]
    assert result["outcome"] == "undetected" and result["environment"] == "staging"
    assert _workers(state, result["target"]) == ""

    # A run killed after its fault went in: the fault stays until the next start removes it.
    proc = subprocess.Popen(
        [sys.executable, "-m", "terry", "--repo", str(repo), "chaos", "run", "cpu-stress-long"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        injected = wait_for(
            lambda: next((r for r in _runs(repo) if r.state == "injected"), None), 60, 0.5
        )
        assert injected is not None, "the long run never injected its fault"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert _workers(state, injected.target) != ""  # left behind by the killed run
    recovered = _terry(repo, "chaos", "recover")
    assert recovered.returncode == 0 and "1 interrupted run(s) cleaned up" in recovered.stdout
    assert _workers(state, injected.target) == ""
    killed = next(r for r in _runs(repo) if r.id == injected.id)
    assert killed.outcome == "interrupted" and killed.removed_at is not None
    assert all(r.environment == "staging" for r in _runs(repo))
    print(f"chaos lab test body: {time.monotonic() - started:.1f}s")


def _fault(repo: Path, fault: str, action: str, params: dict[str, Any]) -> FaultRun:
    from terry.config import load_config

    return run_fault(load_config(repo), FAULT_HOST, fault, action, params)


def _pid_status(state: lab.LabState, pid: str) -> str:
    """``/proc/PID/status`` and the targets of its open files; "" once the process is gone."""
    return ssh(
        state,
        FAULT_HOST,
        f"cat /proc/{int(pid)}/status 2>/dev/null && ls -l /proc/{int(pid)}/fd 2>/dev/null || true",
    )


def _rss_mib(status: str) -> int:
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) // 1024


def test_every_other_fault_goes_in_shows_on_the_host_and_comes_out(
    chaos_lab: tuple[Path, lab.LabState],
) -> None:
    repo, state = chaos_lab
    started = time.monotonic()

    # config-invalid: the managed config gets a line no parser accepts, then comes back whole
    conf = {"file": "/etc/app/app.conf"}
    before = ssh(state, FAULT_HOST, "cat", "/etc/app/app.conf")
    assert _fault(repo, "config-invalid", "inject", conf).ok
    assert "this line is not valid configuration" in ssh(state, FAULT_HOST, "cat", conf["file"])
    assert _fault(repo, "config-invalid", "check", conf).result["symptom"] is True
    assert _fault(repo, "config-invalid", "remove", conf).ok
    assert ssh(state, FAULT_HOST, "cat", conf["file"]) == before
    assert _fault(repo, "config-invalid", "check", conf).result["symptom"] is False

    # memory-pressure and deleted-file-open: processes of the fault's own, killed on remove
    memory = _fault(repo, "memory-pressure", "inject", {"mib": 64, "seconds": 300})
    held = _fault(repo, "deleted-file-open", "inject", {"mib": 8, "seconds": 300})
    assert memory.ok and held.ok, (memory.detail, held.detail)
    [hog], [holder] = memory.result["pids"], held.result["pids"]
    assert wait_for(lambda: _rss_mib(_pid_status(state, hog)) >= 64, 20), _pid_status(state, hog)
    assert wait_for(lambda: "terry-chaos-held.bin (deleted)" in _pid_status(state, holder), 20)
    assert _fault(repo, "memory-pressure", "remove", {}).ok
    assert _fault(repo, "deleted-file-open", "remove", {}).ok
    for pid in (hog, holder):  # gone, or a zombie that holds neither memory nor files
        assert wait_for(lambda p=pid: "VmRSS" not in _pid_status(state, p), 10), pid
        assert "(deleted)" not in _pid_status(state, pid)

    # service-kill: SIGKILL (no clean stop), then started again
    web = {"service": "web"}
    svc = ("/opt/terry/bin/terry-svc", "status", "web")
    assert _fault(repo, "service-kill", "inject", web).ok
    assert "web is stopped" in ssh(state, FAULT_HOST, *svc, "|| true")
    assert _fault(repo, "service-kill", "remove", web).ok
    assert "web is running" in ssh(state, FAULT_HOST, *svc)

    # network-latency / network-loss: a netem qdisc on eth0, deleted on remove. A kernel
    # without sch_netem (the CI machines' microVMs) refuses it: the fault fails, saying so,
    # and leaves the interface as it was.
    for fault, params, shows in (
        ("network-latency", {"interface": "eth0", "delay_ms": 50}, "delay 50ms"),
        ("network-loss", {"interface": "eth0", "loss_percent": 5}, "loss 5%"),
    ):
        qdisc = ("tc", "qdisc", "show", "dev", "eth0")
        done = _fault(repo, fault, "inject", params)
        if done.ok:
            assert shows in ssh(state, FAULT_HOST, *qdisc)
        else:
            assert "this kernel has no netem qdisc" in done.detail, done.detail
        assert _fault(repo, fault, "remove", params).ok
        assert "netem" not in ssh(state, FAULT_HOST, *qdisc)
    print(f"\nsix faults in and out: {time.monotonic() - started:.1f}s")
