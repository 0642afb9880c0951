"""``up``, ``down`` and ``status`` of the whole lab.

``up`` records every resource in the state file the moment it exists, so ``down`` can
always take apart what is there, after a crash or a half-finished ``up`` too; ``down``
also sweeps the lab's own names (bridge, ``<netns_prefix>lab-NN``, ``<veth_prefix>NN``).
Given a repository, ``up`` writes the lab's inventory there and applies its
``playbooks/site.yml`` to the fresh hosts (``terry.lab.converge``) before Prometheus
watches them, so a new lab starts as the repository says, without drift.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import terry
from terry.errors import ConfigError, StateError
from terry.lab import net
from terry.lab.converge import converge as converge_hosts
from terry.lab.hosts import NODE_EXPORTER, SSHD, TERRY_SVC, start_host
from terry.lab.inventory import write_inventory
from terry.lab.model import (
    DEFAULT_WEBHOOK_URL,
    MAX_HOSTS,
    ComponentStatus,
    DownReport,
    HostStatus,
    LabConfig,
    LabError,
    LabHost,
    LabProcess,
    LabState,
    LabStatus,
    load_state,
    save_state,
)
from terry.lab.monitoring import (
    ALERTMANAGER,
    PROMETHEUS,
    rules_source,
    start_alertmanager,
    start_prometheus,
)
from terry.lab.procs import (
    http_ok,
    process_alive,
    resolve,
    run,
    stop_pid,
    stop_process,
    tcp_open,
    wait_until,
)

__all__ = ["down", "missing_prerequisites", "service_script_source", "status", "up"]

_PACKAGES = "openssh-server prometheus prometheus-alertmanager prometheus-node-exporter"
_TOOLS = (
    "ip",
    "nsenter",
    "unshare",
    "setsid",
    "mount",
    "losetup",
    "mkfs.ext4",
    "ssh-keygen",
    "/usr/bin/python3",
    SSHD,
    NODE_EXPORTER,
    PROMETHEUS,
    ALERTMANAGER,
)
_SVC_RELATIVE = Path("roles") / "terry_service" / "files" / "terry-svc"


def missing_prerequisites() -> str | None:
    """Why the lab cannot run on this machine (not root, tools missing), or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, mounts, loop devices): run it as root"
    missing = [tool for tool in _TOOLS if resolve(tool) is None]
    if missing:
        return f"the lab needs {', '.join(missing)}; on Debian: apt-get install -y {_PACKAGES}"
    return None


def _preflight(hosts: int) -> None:
    if os.geteuid() != 0:
        raise StateError(
            "the lab needs root (network namespaces, mounts, loop devices): run it as root"
        )
    if not 1 <= hosts <= MAX_HOSTS:
        raise StateError(f"--hosts must be between 1 and {MAX_HOSTS}, not {hosts}")
    why = missing_prerequisites()
    if why:
        raise ConfigError(why)


def service_script_source(repo: Path | None = None) -> Path:
    """``roles/terry_service/files/terry-svc``: in the GitOps repo, else Terry's own copy."""
    package = Path(terry.__file__).resolve().parent
    candidates = [package / "content" / _SVC_RELATIVE, package.parent / _SVC_RELATIVE]
    if repo is not None:
        candidates.insert(0, repo / _SVC_RELATIVE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"terry-svc not found (looked at {', '.join(map(str, candidates))})")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _install_service_script(source: Path) -> list[str]:
    """Copy terry-svc to /opt/terry/bin (shared by all hosts); return what did not exist."""
    created: list[str] = []
    for directory in (TERRY_SVC.parent.parent, TERRY_SVC.parent):
        if not directory.exists():
            directory.mkdir(mode=0o755)
            created.append(str(directory))
    if TERRY_SVC.exists() and _digest(TERRY_SVC) == _digest(source):
        return created
    if not TERRY_SVC.exists():
        created.append(str(TERRY_SVC))
    tmp = TERRY_SVC.with_name(f".{TERRY_SVC.name}.{os.getpid()}")
    shutil.copyfile(source, tmp)
    tmp.chmod(0o755)
    os.replace(tmp, TERRY_SVC)
    return created


def _ssh_key(config: LabConfig) -> tuple[Path, Path]:
    ssh_dir = config.state_dir / "ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    key = ssh_dir / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "terry-lab", "-f", str(key)])
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(key.with_suffix(".pub").read_text(encoding="utf-8"), encoding="utf-8")
    authorized.chmod(0o600)
    return key, authorized


def _control_dir(config: LabConfig) -> Path:
    return config.state_dir / "cp"


def _close_ssh_masters(config: LabConfig, removed: list[str]) -> None:
    """End Ansible's SSH master connections to the lab (their sockets are in the lab dir)."""
    directory = _control_dir(config)
    if not directory.is_dir():
        return
    for sock in sorted(directory.iterdir()):
        if sock.is_socket():
            argv = ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "lab"]
            if run(argv, check=False, timeout=10).returncode == 0:
                removed.append(f"ssh master connection {sock.name}")
    shutil.rmtree(directory, ignore_errors=True)


def _host_ready(config: LabConfig, host: LabHost) -> bool:
    ports = [22, config.node_exporter_port, *(s.port for s in host.services)]
    return all(tcp_open(host.address, port) for port in ports)


def _reuse(config: LabConfig, hosts: int, webhook_url: str, repo: Path | None) -> LabState:
    existing = load_state(config)
    current = status(config)
    if not current.healthy:
        raise StateError(f"a lab is partly up in {config.state_dir}; run 'terry lab down' first")
    if len(existing.hosts) != hosts or existing.webhook_url != webhook_url:
        raise StateError(
            f"a lab is already up in {config.state_dir} with {len(existing.hosts)} hosts "
            f"and webhook {existing.webhook_url}; run 'terry lab down' first"
        )
    if repo is not None:
        inventory = write_inventory(
            repo, existing.hosts, existing.ssh_key, control_path_dir=_control_dir(config)
        )
        existing = replace(existing, inventory=inventory)
        save_state(existing)
    return existing


def up(
    config: LabConfig | None = None,
    *,
    hosts: int = 3,
    repo: Path | None = None,
    webhook_url: str = DEFAULT_WEBHOOK_URL,
    webhook_token: str | None = None,
    service_script: Path | None = None,
    converge: bool = True,
) -> LabState:
    """Start the lab and write its inventory to ``repo/inventories/lab/hosts.yml``; then,
    with ``converge``, apply the repository's ``playbooks/site.yml`` to the new hosts (and
    restart their services so they read the config it rendered) before Prometheus starts.

    When an identical lab is already up it is reused (the inventory is rewritten, nothing
    applied); a different or broken one is a :class:`StateError`. A failed ``up`` (site.yml
    failing included) is taken down.
    """
    config = config or LabConfig()
    _preflight(hosts)
    if config.state_file.exists():
        return _reuse(config, hosts, webhook_url, repo)
    if net.bridge_exists(config):
        raise StateError(
            f"bridge {config.bridge} exists but {config.state_dir} records no lab; "
            "run 'terry lab down' to clear the leftovers"
        )
    script = service_script or service_script_source(repo)
    rules = rules_source()
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = LabState(
        config=config,
        ssh_key=config.state_dir / "ssh" / "id_ed25519",
        webhook_url=webhook_url,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    save_state(state)

    def record(host: LabHost) -> None:
        nonlocal state
        state = replace(state, hosts=(*state.hosts, host))
        save_state(state)

    try:
        state = replace(state, created_paths=tuple(_install_service_script(script)))
        save_state(state)
        key, authorized = _ssh_key(config)
        _control_dir(config).mkdir(mode=0o700, exist_ok=True)
        state = replace(state, ssh_key=key)
        net.create_bridge(config)
        peers = {config.host_name(i): config.host_address(i) for i in range(1, hosts + 1)}
        peers["lab-gateway"] = config.gateway
        for index in range(1, hosts + 1):
            start_host(config, index, authorized_keys=authorized, peers=peers, on_progress=record)
        for host in state.hosts:
            if not wait_until(lambda h=host: _host_ready(config, h), timeout=20.0):
                raise LabError(f"{host.name}: sshd, node_exporter or service not answering")
        if repo is not None:
            inventory = write_inventory(
                repo, state.hosts, key, control_path_dir=_control_dir(config)
            )
            state = replace(state, inventory=inventory)
            save_state(state)
            if converge:  # before Prometheus watches: the services restart once here
                state = replace(state, converged=converge_hosts(state, repo))
                save_state(state)
        state = replace(
            state,
            alertmanager=start_alertmanager(
                config, webhook_url=webhook_url, webhook_token=webhook_token
            ),
        )
        save_state(state)
        state = replace(state, prometheus=start_prometheus(config, state.hosts, rules=rules))
        save_state(state)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            down(config)
        if isinstance(exc, OSError | subprocess.SubprocessError):
            raise LabError(f"lab up failed: {exc}") from exc
        raise
    return state


# ---------------------------------------------------------------- down


def _detach_loops(images: set[Path], removed: list[str], problems: list[str]) -> None:
    for image in sorted(images):
        if not image.exists():
            continue

        def attached(image: Path = image) -> list[str]:
            out = run(["losetup", "--noheadings", "-O", "NAME", "-j", str(image)], check=False)
            return out.stdout.split()

        for device in attached():
            if run(["losetup", "-d", device], check=False).returncode == 0:
                removed.append(f"loop device {device}")
        if not wait_until(lambda: not attached(), timeout=10.0):
            problems.append(f"{image} is still attached to {', '.join(attached())}")


def _remove_created(paths: tuple[str, ...], removed: list[str], problems: list[str]) -> None:
    for raw in reversed(paths):
        path = Path(raw)
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            removed.append(f"file {path}")
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror}")


def _remove_state_dir(config: LabConfig, removed: list[str]) -> None:
    root = config.state_dir
    for name in ("hosts", "prometheus", "alertmanager", "ssh", "runs"):
        if (root / name).exists():
            shutil.rmtree(root / name)
            removed.append(f"directory {root / name}")
    if config.state_file.exists():
        config.state_file.unlink()
        removed.append(f"file {config.state_file}")
    with contextlib.suppress(OSError):
        root.rmdir()


def down(config: LabConfig | None = None) -> DownReport:
    """Remove every process, namespace, link, loop device and file of the lab.

    Safe to run twice, and after a failed or interrupted ``up``.
    """
    config = config or LabConfig()
    if os.geteuid() != 0:
        raise StateError("the lab needs root: run 'terry lab down' as root")
    removed: list[str] = []
    problems: list[str] = []
    state: LabState | None = None
    with contextlib.suppress(StateError):
        state = load_state(config)
    names = replace(state.config, state_dir=config.state_dir) if state else config

    def stop(label: str, proc: LabProcess, *, graceful: bool = True) -> None:
        try:
            if stop_process(proc, graceful=graceful):
                removed.append(label)
        except LabError as exc:
            problems.append(str(exc))

    _close_ssh_masters(names, removed)
    if state is not None:
        for proc in (state.prometheus, state.alertmanager):
            if proc is not None:
                stop(f"process {proc.name} (pid {proc.pid})", proc)
        for host in state.hosts:
            # The holder (unshare) ignores SIGTERM; SIGKILL takes the host's pid 1 with it
            # (--kill-child), and the kernel then ends every process on the host.
            label = f"host {host.name} (pid {host.holder.pid} and its namespaces)"
            stop(label, host.holder, graceful=False)

    ours = re.compile(rf"^{re.escape(names.netns_prefix)}lab-\d+$")
    netns = {ns for ns in net.netns_names() if ours.match(ns)}
    netns |= {h.netns for h in state.hosts} if state else set()
    for ns in sorted(netns):
        for pid in net.netns_pids(ns):
            try:
                if stop_pid(pid, expected_start=None, graceful=False):
                    removed.append(f"process {pid} in {ns}")
            except LabError as exc:
                problems.append(str(exc))
        if net.delete_netns(ns):
            removed.append(f"network namespace {ns}")

    images = set((names.state_dir / "hosts").glob("*/data.img"))
    images |= {h.image for h in state.hosts} if state else set()
    _detach_loops(images, removed, problems)

    veth = re.compile(rf"^{re.escape(names.veth_prefix)}\d+$")
    for link in sorted(net.link_names()):
        if veth.match(link) and net.delete_link(link):
            removed.append(f"link {link}")
    if net.delete_link(names.bridge):
        removed.append(f"bridge {names.bridge}")

    if state is not None:
        _remove_created(state.created_paths, removed, problems)
    _remove_state_dir(names, removed)
    return DownReport(removed=tuple(removed), problems=tuple(problems))


# ---------------------------------------------------------------- status


def _host_status(config: LabConfig, host: LabHost) -> HostStatus:
    alive = process_alive(host.holder)
    checks: list[ComponentStatus] = []
    endpoints = [
        ("sshd", f"{host.address}:22", lambda: tcp_open(host.address, 22)),
        (
            "node_exporter",
            f"http://{host.address}:{config.node_exporter_port}/metrics",
            lambda: http_ok(f"http://{host.address}:{config.node_exporter_port}/metrics", 2.0),
        ),
    ]
    for service in host.services:
        url = f"http://{service.bind}:{service.port}/healthz"
        endpoints.append((f"service:{service.name}", url, lambda url=url: http_ok(url)))
    for name, where, probe in endpoints:
        checks.append(ComponentStatus(name, alive and probe(), where))
    return HostStatus(host.name, host.address, host.environment, alive, tuple(checks))


def status(config: LabConfig | None = None) -> LabStatus:
    """Probe every part of the lab; ``up`` is False when no lab is recorded."""
    config = config or LabConfig()
    try:
        state = load_state(config)
    except StateError:
        return LabStatus(up=False, state_dir=config.state_dir)
    lab = replace(state.config, state_dir=config.state_dir)
    components = (
        ComponentStatus(
            "prometheus",
            process_alive(state.prometheus) and http_ok(f"{state.prometheus_url}/-/ready"),
            state.prometheus_url,
        ),
        ComponentStatus(
            "alertmanager",
            process_alive(state.alertmanager) and http_ok(f"{state.alertmanager_url}/-/ready"),
            state.alertmanager_url,
        ),
    )
    return LabStatus(
        up=True,
        hosts=tuple(_host_status(lab, h) for h in state.hosts),
        components=components,
        prometheus_url=state.prometheus_url,
        alertmanager_url=state.alertmanager_url,
        inventory=state.inventory,
        state_dir=config.state_dir,
    )
