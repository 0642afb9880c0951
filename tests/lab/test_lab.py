"""The lab end to end: real namespaces, sshd, Ansible, Prometheus, Alertmanager (root).

One lab for the module, with its own names and subnet so it never meets a developer's
lab on the same machine. The tests run in file order: healthy first, then faults, then
``down``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from terry import lab
from terry.cli import main
from terry.errors import InputError, StateError
from terry.lab.procs import resolve, start_time
from tests.lab.helpers import df_percent, prometheus_alert, ssh, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
NEEDS = [
    "/usr/sbin/sshd",
    "/usr/bin/prometheus",
    "/usr/bin/prometheus-alertmanager",
    "/usr/bin/prometheus-node-exporter",
    "promtool",
]
# Not the defaults: a developer's `terry lab up` may be running next to the tests.
NAMES = {
    "bridge": "terrylabt0",
    "subnet": "10.78.0.0/24",
    "netns_prefix": "terrytest-",
    "veth_prefix": "tlabt",
}
ALERT_TIMEOUT = 60.0


class Receiver:
    """A webhook receiver like Terry's: records each Alertmanager payload, answers 200."""

    def __init__(self) -> None:
        self.payloads: list[tuple[float, dict[str, Any]]] = []
        lock = threading.Lock()
        received = self.payloads

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    received.append((time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/alerts"

    def find(self, alertname: str, host: str) -> tuple[float, dict[str, Any]] | None:
        for at, payload in list(self.payloads):
            for alert in payload.get("alerts", []):
                labels = alert.get("labels", {})
                if (
                    alert.get("status") == "firing"
                    and labels.get("alertname") == alertname
                    and labels.get("host") == host
                ):
                    return at, payload
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("repo")
    (path / "inventories").mkdir()
    return path


@pytest.fixture(scope="module")
def lab_state(lab_config: lab.LabConfig, repo: Path, receiver: Receiver) -> Iterator[lab.LabState]:
    lab.down(lab_config)  # leftovers of an interrupted earlier run
    started = time.monotonic()
    state = lab.up(lab_config, hosts=3, repo=repo, webhook_url=receiver.url)
    print(f"\nlab up: {time.monotonic() - started:.1f}s")
    try:
        yield state
    finally:
        lab.down(lab_config)


# ---------------------------------------------------------------- without a lab


def test_alerting_rules_pass_promtool() -> None:
    rules = REPO_ROOT / "lab" / "prometheus"
    for argv in (
        ["promtool", "check", "rules", "rules.yml"],
        ["promtool", "test", "rules", "rules_test.yml"],
    ):
        proc = subprocess.run(argv, cwd=rules, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_up_refuses_without_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(StateError, match="root"):
        lab.up(lab.LabConfig(state_dir=tmp_path, **NAMES), repo=tmp_path)


def test_a_data_volume_of_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="lab data volume 'nfs': one of loop, tmpfs"):
        lab.LabConfig(state_dir=tmp_path, data_volume="nfs", **NAMES)
    said = subprocess.run(
        [sys.executable, "-m", "terry", "lab", "up", "--data-volume", "nfs"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert said.returncode == 2 and "'nfs' is not one of 'loop', 'tmpfs'" in said.stderr


# ---------------------------------------------------------------- a healthy lab


def test_inventory_lists_every_host(lab_state: lab.LabState, repo: Path) -> None:
    path = repo / "inventories" / "lab" / "hosts.yml"
    assert lab_state.inventory == path.resolve()
    groups = yaml.safe_load(path.read_text())["all"]["children"]["lab"]["children"]
    assert set(groups["production"]["hosts"]) == {"lab-01"}
    assert set(groups["staging"]["hosts"]) == {"lab-02", "lab-03"}
    lab02 = groups["staging"]["hosts"]["lab-02"]
    assert lab02["ansible_host"] == "10.78.0.12"
    assert lab02["ansible_user"] == "root"
    assert Path(lab02["ansible_ssh_private_key_file"]).is_absolute()
    assert lab02["ansible_python_interpreter"] == "/usr/bin/python3"
    assert lab02["terry_root"] == ""
    assert lab02["terry_environment"] == "staging"
    assert lab02["terry_tenant"] == "blue"
    assert lab02["terry_services"] == {"web": {"port": 8080, "bind": "10.78.0.12"}}


def test_ansible_reaches_every_host_over_ssh(lab_state: lab.LabState, repo: Path) -> None:
    ansible = Path(sys.executable).with_name("ansible")
    proc = subprocess.run(
        [str(ansible), "-i", str(lab_state.inventory), "all", "-m", "ansible.builtin.ping", "-o"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for host in ("lab-01", "lab-02", "lab-03"):
        assert f"{host} | SUCCESS" in proc.stdout


def test_each_host_has_its_own_small_data_volume(lab_state: lab.LabState) -> None:
    assert ssh(lab_state, "lab-01", "hostname").strip() == "lab-01"
    size_kib = int(ssh(lab_state, "lab-02", "df", "-P", "/srv/data").splitlines()[-1].split()[1])
    assert size_kib < 128 * 1024
    ssh(lab_state, "lab-01", "touch", "/srv/data/only-on-lab-01", "/etc/app/only-on-lab-01")
    listing = ssh(lab_state, "lab-02", "ls", "-A", "/srv/data", "/etc/app")
    assert "only-on-lab-01" not in listing
    assert not Path("/etc/app/only-on-lab-01").exists()


def test_each_host_has_its_own_root_home(lab_state: lab.LabState) -> None:
    # bash reads ~/.bashrc for every command over SSH: a host's shell must not run the
    # machine's (a version manager's init there made every SSH command ~15x dearer).
    ssh(lab_state, "lab-01", "touch", "/root/.bashrc-of-lab-01")
    assert "bashrc-of-lab-01" not in ssh(lab_state, "lab-02", "ls", "-A", "/root")
    assert not Path("/root/.bashrc-of-lab-01").exists()
    assert ssh(lab_state, "lab-02", "stat", "--format=%a:%U", "/root").strip() == "700:root"


def test_status_reports_everything_up(lab_state: lab.LabState, lab_config: lab.LabConfig) -> None:
    current = lab.status(lab_config)
    assert current.healthy, current
    assert [h.address for h in current.hosts] == ["10.78.0.11", "10.78.0.12", "10.78.0.13"]
    result = CliRunner().invoke(
        main, ["lab", "--state-dir", str(lab_config.state_dir), "status", "--output", "json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["healthy"] is True
    assert body["components"] == {"prometheus": True, "alertmanager": True}


def test_up_again_reuses_the_running_lab(
    lab_state: lab.LabState, lab_config: lab.LabConfig, repo: Path
) -> None:
    again = lab.up(lab_config, hosts=3, repo=repo, webhook_url=lab_state.webhook_url)
    assert again.hosts == lab_state.hosts
    with pytest.raises(StateError, match="already up"):
        lab.up(lab_config, hosts=2, repo=repo, webhook_url=lab_state.webhook_url)


# ---------------------------------------------------------------- faults and alerts


def test_disk_fault_fires_disk_usage_high(lab_state: lab.LabState, receiver: Receiver) -> None:
    result = lab.break_host(lab_state, "lab-02", "disk", percent=95)
    broken_at = time.monotonic()
    assert result.used_percent_after is not None and result.used_percent_after >= 95
    assert any(f.startswith("/srv/data/log/app.log.") for f in result.files)
    assert df_percent(lab_state, "lab-02") >= 90
    assert df_percent(lab_state, "lab-03") < 20
    old = ssh(lab_state, "lab-02", "find", "/srv/data/tmp", "-type", "f", "-mtime", "+20")
    assert len(old.split()) >= 1

    alert = wait_for(lambda: prometheus_alert(lab_state, "DiskUsageHigh", "lab-02"), ALERT_TIMEOUT)
    assert alert is not None, "DiskUsageHigh did not fire in Prometheus"
    assert alert["labels"]["mountpoint"] == "/srv/data"
    assert alert["labels"]["severity"] == "warning"
    assert "lab-02" in alert["annotations"]["summary"]
    assert prometheus_alert(lab_state, "DiskUsageHigh", "lab-03") is None

    got = wait_for(lambda: receiver.find("DiskUsageHigh", "lab-02"), ALERT_TIMEOUT)
    assert got is not None, "Alertmanager did not post DiskUsageHigh to the webhook"
    at, payload = got
    print(f"\nDiskUsageHigh at the webhook {at - broken_at:.1f}s after the disk filled")
    assert payload["version"] == "4"
    assert payload["receiver"] == "terry"
    assert {"groupKey", "status", "alerts", "commonLabels", "externalURL"} <= payload.keys()
    posted = next(a for a in payload["alerts"] if a["labels"]["host"] == "lab-02")
    assert posted["labels"]["alertname"] == "DiskUsageHigh"
    assert posted["fingerprint"]


def test_service_fault_fires_service_down(
    lab_state: lab.LabState, lab_config: lab.LabConfig, receiver: Receiver
) -> None:
    result = lab.break_host(lab_state, "lab-03", "service")
    broken_at = time.monotonic()
    assert "stopped" in result.detail

    alert = wait_for(lambda: prometheus_alert(lab_state, "ServiceDown", "lab-03"), ALERT_TIMEOUT)
    assert alert is not None, "ServiceDown did not fire in Prometheus"
    assert alert["labels"]["service"] == "web"
    assert alert["labels"]["severity"] == "critical"
    got = wait_for(lambda: receiver.find("ServiceDown", "lab-03"), ALERT_TIMEOUT)
    assert got is not None, "Alertmanager did not post ServiceDown to the webhook"
    print(f"\nServiceDown at the webhook {got[0] - broken_at:.1f}s after the service stopped")

    current = lab.status(lab_config)
    assert not current.healthy
    result_cli = CliRunner().invoke(
        main, ["lab", "--state-dir", str(lab_config.state_dir), "status", "-o", "json"]
    )
    assert result_cli.exit_code == 1

    healed = lab.heal_host(lab_state, "lab-03", "service")
    assert "started" in healed.detail
    assert lab.status(lab_config).healthy


def test_memory_fault_fires_process_memory_high(
    lab_state: lab.LabState, receiver: Receiver
) -> None:
    result = lab.break_host(lab_state, "lab-02", "memory")
    assert "holding 200 MiB" in result.detail
    alert = wait_for(
        lambda: prometheus_alert(lab_state, "ProcessMemoryHigh", "lab-02"), ALERT_TIMEOUT
    )
    assert alert is not None, "ProcessMemoryHigh did not fire in Prometheus"
    assert alert["labels"]["service"] == "web"
    got = wait_for(lambda: receiver.find("ProcessMemoryHigh", "lab-02"), ALERT_TIMEOUT)
    assert got is not None, "Alertmanager did not post ProcessMemoryHigh to the webhook"
    healed = lab.heal_host(lab_state, "lab-02", "memory")
    assert "started" in healed.detail


# ---------------------------------------------------------------- down


def _assert_nothing_left(state: lab.LabState, config: lab.LabConfig) -> None:
    for proc in (state.prometheus, state.alertmanager, *(h.holder for h in state.hosts)):
        assert proc is not None
        assert start_time(proc.pid) != proc.start_time, f"{proc.name} still runs"
    for host in state.hosts:
        assert start_time(host.init_pid) is None, f"{host.name} pid 1 still runs"
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert config.netns_prefix not in namespaces
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert config.bridge not in links
    assert config.veth_prefix not in links
    losetup = resolve("losetup") or "losetup"
    loops = subprocess.run([losetup, "-a"], capture_output=True, text=True).stdout
    assert str(config.state_dir) not in loops
    assert not config.state_dir.exists()


def test_down_removes_everything_and_twice_is_fine(
    lab_state: lab.LabState, lab_config: lab.LabConfig
) -> None:
    report = lab.down(lab_config)
    assert not report.problems
    assert any("bridge" in item for item in report.removed)
    _assert_nothing_left(lab_state, lab_config)
    assert lab.down(lab_config).removed == ()
    assert not lab.status(lab_config).up

    # Leftovers of a crashed `up` with no state file are found by name and removed.
    subprocess.run(["ip", "link", "add", lab_config.bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "netns", "add", f"{lab_config.netns_prefix}lab-09"], check=True)
    leftovers = lab.down(lab_config)
    assert f"bridge {lab_config.bridge}" in leftovers.removed
    assert f"network namespace {lab_config.netns_prefix}lab-09" in leftovers.removed
    _assert_nothing_left(lab_state, lab_config)
