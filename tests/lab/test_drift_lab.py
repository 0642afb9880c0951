"""Drift against the lab (root): real SSH hosts that ``lab up`` brought to the desired state,
then changed by hand the way people do, one kind of change per host; the scan must report
exactly those items on exactly those hosts, call an unreachable host unreachable, and see
them resolved once the hosts are back in line. The service reads its managed config, so a
broken one really keeps it down until the desired state is back. The tests run in file
order on one lab.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from terry import lab
from terry.cli import main
from terry.gitops.repo import Repo
from tests.conftest import Cli, make_cli
from tests.lab.helpers import ssh

NEEDS = ["/usr/sbin/sshd", "/usr/bin/prometheus", "/usr/bin/prometheus-node-exporter"]
NAMES = {
    "bridge": "terrylabd0",
    "subnet": "10.77.0.0/24",
    "netns_prefix": "terrydrift-",
    "veth_prefix": "tlabd",
}


@pytest.fixture(scope="module")
def fleet(
    lab_config: lab.LabConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cli, lab.LabState]]:
    config = lab_config
    repo = tmp_path_factory.mktemp("drift") / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    lab.down(config)
    state = lab.up(config, hosts=3, repo=repo)
    try:
        settings = yaml.safe_load((repo / "terry.yml").read_text())
        settings["inventory"] = ["inventories/lab"]
        (repo / "terry.yml").write_text(yaml.safe_dump(settings))
        Repo(repo).commit_paths(["terry.yml", "inventories/lab"], "lab inventory")
        cli = make_cli(repo)
        yield cli, state
    finally:
        lab.down(config)


def _scan(cli: Cli, *args: str) -> dict[str, Any]:
    result = cli("drift", "scan", *args, "--output", "json")
    assert result.exit_code == 0, result.stderr or result.stdout
    return json.loads(result.stdout)


def _items(report: dict[str, Any], *, states: tuple[str, ...] = ("new", "persisting")) -> set:
    return {
        (h["host"], i["kind"], i["resource"])
        for h in report["hosts"]
        for i in h["items"]
        if i["state"] in states
    }


def _statuses(report: dict[str, Any]) -> dict[str, str]:
    return {h["host"]: h["status"] for h in report["hosts"]}


def _reconcile(cli: Cli, *args: str) -> dict[str, Any]:
    """terry drift fix, and the approval a production host needs: verified by a rescan."""
    fixed = cli.json("drift", "fix", *args)
    if fixed["state"] == "awaiting_review":
        approved = cli.as_("ops").json("proposals", "approve", str(fixed["proposal_id"]))
        assert approved["state"] == "verified", approved
        fixed["state"] = approved["state"]
    return fixed


def test_a_fresh_lab_has_no_drift(fleet: tuple[Cli, lab.LabState]) -> None:
    cli, state = fleet
    # lab up applied site.yml to the new hosts: app.conf rendered, sysctls set...
    assert state.converged.startswith("playbooks/site.yml at "), state.converged
    report = _scan(cli)
    assert _statuses(report) == {h.name: "clean" for h in state.hosts}, _items(report)
    assert report["summary"]["items"] == 0
    # ...and each service runs with the config it rendered, read when it started
    for host in state.hosts:
        log = ssh(state, host.name, "cat", "/run/terry/web.log")
        assert "config /etc/app/app.conf (log_level info, max_connections 100)" in log


def test_changes_by_hand_are_exactly_the_items_reported(fleet: tuple[Cli, lab.LabState]) -> None:
    cli, state = fleet
    one, two, three = (h.name for h in state.hosts)
    # one: a kernel parameter changed by hand; two: the managed file edited, and a package
    # version declared that it does not run; three: the service stopped and the host
    # renamed (it now answers with another identity).
    ssh(state, one, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    ssh(state, two, "echo 'debug = true' >> /etc/app/app.conf")  # one remote shell line
    host_vars = cli.repo / "inventories" / "lab" / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / f"{two}.yml").write_text(
        yaml.safe_dump({"terry_packages": {"openssh-server": "1:0.0-declared"}})
    )
    Repo(cli.repo).commit_paths(["inventories/lab/host_vars"], f"{two}: pin openssh-server")
    lab.break_host(state, three, "service")
    ssh(state, three, "hostname", "impostor")

    report = _scan(cli)
    assert _items(report) == {
        (one, "task", "sysctl net.ipv4.ip_forward"),
        (two, "task", "file /etc/app/app.conf"),
        (two, "package", "package openssh-server"),
        (three, "task", "service web"),
        (three, "identity", "hostname"),
    }
    assert _statuses(report) == {one: "drifted", two: "drifted", three: "drifted"}
    by_resource = {i["resource"]: i for h in report["hosts"] for i in h["items"]}
    assert "+debug = true" not in by_resource["file /etc/app/app.conf"]["diff"]
    assert "-debug = true" in by_resource["file /etc/app/app.conf"]["diff"]
    assert by_resource["sysctl net.ipv4.ip_forward"]["detail"] == "1 → 0"
    assert "inventory says 1:0.0-declared" in by_resource["package openssh-server"]["detail"]
    assert "'impostor'" in by_resource["hostname"]["detail"]
    # The same drift again is persisting, with its first sighting as "since".
    again = _scan(cli)
    assert _items(again, states=("persisting",)) == _items(report)
    assert {i["since"] for h in again["hosts"] for i in h["items"]} == {
        i["since"] for h in report["hosts"] for i in h["items"]
    }
    exit_code = cli("drift", "scan", "--limit", one, "--exit-code")
    assert exit_code.exit_code == 1


def test_an_unreachable_host_is_unreachable_not_drifted(fleet: tuple[Cli, lab.LabState]) -> None:
    cli, state = fleet
    one, two, _three = (h.name for h in state.hosts)
    lab.break_host(state, two, "network")
    try:
        report = _scan(cli)
    finally:
        lab.heal_host(state, two, "network")
    assert _statuses(report)[two] == "unreachable"
    assert not next(h for h in report["hosts"] if h["host"] == two)["items"]
    assert report["summary"]["hosts_unreachable"] == 1
    # The others are still judged: one's sysctl persists.
    assert (one, "task", "sysctl net.ipv4.ip_forward") in _items(report, states=("persisting",))


def test_back_in_line_the_items_are_resolved(fleet: tuple[Cli, lab.LabState]) -> None:
    cli, state = fleet
    one, two, three = (h.name for h in state.hosts)
    ssh(state, three, "hostname", three)
    (cli.repo / "inventories" / "lab" / "host_vars" / f"{two}.yml").unlink()
    Repo(cli.repo).commit_paths(["inventories/lab/host_vars"], f"{two}: unpin openssh-server")
    fixed = _reconcile(cli)
    assert set(fixed["hosts"]) == {one, two, three} and fixed["state"] == "verified"
    report = _scan(cli)
    assert _statuses(report) == {one: "clean", two: "clean", three: "clean"}
    assert report["summary"]["resolved"] == 0  # already resolved by the fix's own rescan
    # The fix's first scan saw the name and the pin already back in line; its verification
    # scan saw the rest resolved by the reconciliation.
    resolved: set[tuple[str, str, str]] = set()
    for scan_id in (fixed["scan_id"], report["scan_id"] - 1):
        shown = cli("drift", "report", "--scan", str(scan_id), "--format", "json")
        resolved |= _items(json.loads(shown.stdout), states=("resolved",))
    assert resolved == {
        (one, "task", "sysctl net.ipv4.ip_forward"),
        (two, "task", "file /etc/app/app.conf"),
        (two, "package", "package openssh-server"),
        (three, "task", "service web"),
        (three, "identity", "hostname"),
    }
    assert ssh(state, one, "sysctl", "-n", "net.ipv4.ip_forward").strip() == "0"
    html = cli("drift", "report", "--format", "html")
    assert html.exit_code == 0 and "<svg" in html.stdout and "impostor" not in html.stdout


def test_a_broken_config_keeps_the_service_down_until_the_desired_state_is_back(
    fleet: tuple[Cli, lab.LabState],
) -> None:
    cli, state = fleet
    two = state.hosts[1].name  # staging: its fix merges without review
    ssh(state, two, "sed -i 's/^max_connections = .*/max_connections = lots/' /etc/app/app.conf")
    service = state.host(two).services[0]
    restart = subprocess.run(
        [
            *lab.ssh_argv(state, two),
            "/opt/terry/bin/terry-svc",
            "restart",
            service.name,
            "--port",
            str(service.port),
            "--bind",
            service.bind,
            "--root",
            "/",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert restart.returncode == 1, restart.stdout + restart.stderr
    assert "max_connections = 'lots' is not a whole number" in restart.stderr
    assert _items(_scan(cli, "--limit", two)) == {
        (two, "task", "file /etc/app/app.conf"),
        (two, "task", f"service {service.name}"),
    }
    fixed = _reconcile(cli, "--limit", two)
    assert fixed["state"] == "verified", fixed  # app.conf rendered first, then web started
    assert "max_connections = 100" in ssh(state, two, "cat", "/etc/app/app.conf")
    assert ssh(state, two, "/opt/terry/bin/terry-svc", "status", service.name, "--root", "/")


def test_markup_from_a_host_stays_text_in_reports(fleet: tuple[Cli, lab.LabState]) -> None:
    cli, state = fleet
    one = state.hosts[0].name
    hostile = "<script>alert(1)</script> ``` | `x`"
    ssh(state, one, f"printf '%s\\n' '{hostile}' >> /etc/app/app.conf")
    _scan(cli)
    html = cli("drift", "report", "--format", "html").stdout
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md = cli("drift", "report", "--format", "md").stdout
    assert "````diff" in md  # a fence longer than any backtick run in the diff


def test_a_login_shell_that_talks_is_still_the_same_machine(
    fleet: tuple[Cli, lab.LabState],
) -> None:
    # A host whose root ~/.bashrc writes to stderr (a version manager's warning, say): bash
    # reads it for every SSH command, and over raw's terminal stderr joins stdout, before
    # `uname -n` answers. The scan and the fix's identity probe must read the name, not the
    # warning: the host is clean, and a fix over it is applied and verified.
    cli, state = fleet
    one = state.hosts[0].name
    # the markup test's line in app.conf, taken out by hand (the fix below is the one that
    # matters here)
    ssh(state, one, "sed -i '/<script>alert(1)<\\/script>/d' /etc/app/app.conf")
    bashrc = Path(f"/proc/{state.hosts[0].init_pid}/root/root/.bashrc")
    bashrc.write_text("echo 'pyenv: cannot rehash: /root/.pyenv/shims is not writable' >&2\n")
    said = subprocess.run(
        [*lab.ssh_argv(state, one), "uname", "-n"], capture_output=True, text=True, timeout=30
    )
    assert "cannot rehash" in said.stderr and said.stdout.strip() == one
    report = _scan(cli)
    assert _statuses(report)[one] == "clean", _items(report)
    ssh(state, one, "sysctl", "-w", "net.ipv4.ip_forward=1")
    fixed = _reconcile(cli, "--limit", one)
    assert fixed["state"] == "verified" and set(fixed["hosts"]) == {one}, fixed
    assert ssh(state, one, "sysctl", "-n", "net.ipv4.ip_forward").strip() == "0"
    assert _statuses(_scan(cli)) == {h.name: "clean" for h in state.hosts}
