"""One lab host: namespaces, its own filesystems, sshd, node_exporter and a service.

A host is a process tree: ``holder`` (``unshare``, in the host's named network namespace)
forks the host's pid 1, a tiny reaper, in new mount, pid, UTS and IPC namespaces. Every
daemon is started *inside* all of them (``nsenter -t <pid 1>``), so an SSH session sees
the host's own ``/srv/data``, ``/etc``, ``/run`` and process table. Killing the holder
kills pid 1 and with it everything on the host; the mount namespace and its mounts go
with the last process, and nothing was ever mounted on the machine's own tree.

Inside a host:

==============  ==================================================================
``/srv/data``   a loop-mounted ext4 image (``data_size_mib``), or a size-limited
                tmpfs (``data_volume`` "tmpfs", or no loop devices): it really fills up
``/etc``        an overlay on the machine's ``/etc`` (writes stay on the host);
                ``/etc/app`` is the app's config directory, ``/etc/ssh`` holds the
                host's own sshd config, host key and ``authorized_keys/root``
``/run``        tmpfs; ``/run/terry`` a separate small tmpfs (service pid files),
                ``/run/sshd.log`` sshd's log
``/tmp``        tmpfs
``/root``       tmpfs: root's own home (the machine's ``~/.bashrc``, which bash reads for
                every SSH command, is not the host's; nor is its ``~/.ansible``)
``/sys``        sysfs of the host's network namespace (right interface facts)
==============  ==================================================================
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from terry.lab.model import LabConfig, LabError, LabHost, LabProcess, LabService
from terry.lab.net import create_host_network
from terry.lab.procs import HOST_ENV, argv_of, run, spawn, start_time, wait_until

__all__ = [
    "NODE_EXPORTER",
    "SSHD",
    "TERRY_SVC",
    "host_exec",
    "host_spawn",
    "nsenter_argv",
    "start_host",
]

SSHD = "/usr/sbin/sshd"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
TERRY_SVC = Path("/opt/terry/bin/terry-svc")
INIT_MARKER = "terry-lab-init"

# The host's pid 1: reap every orphan (daemons double-fork onto it), exit on SIGTERM.
_INIT_CODE = """\
import os, signal, time
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        time.sleep(0.5)
"""

_SSHD_CONFIG = """\
# Written by 'terry lab up' for lab host {name} (logs: /run/sshd.log).
ListenAddress {address}:22
HostKey {host_key}
PidFile /run/sshd.pid
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 64:30:128
MaxSessions 64
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
"""

_NODE_EXPORTER_FLAGS = (
    "--no-collector.systemd",
    "--no-collector.hwmon",
    "--no-collector.thermal_zone",
    "--no-collector.rapl",
    "--no-collector.powersupplyclass",
    "--no-collector.nvme",
    "--no-collector.infiniband",
    "--no-collector.fibrechannel",
    "--no-collector.tapestats",
    "--no-collector.textfile",
    "--log.level=warn",
)


def nsenter_argv(init_pid: int) -> list[str]:
    """The argv prefix that runs a command *on* the host whose pid 1 is ``init_pid``."""
    return [
        "nsenter",
        "--target",
        str(init_pid),
        "--mount",
        "--uts",
        "--ipc",
        "--net",
        "--pid",
        "--",
    ]


def host_exec(
    host: LabHost | int, argv: Sequence[str], *, check: bool = True, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` on a lab host (all its namespaces, a clean root environment)."""
    init_pid = host if isinstance(host, int) else host.init_pid
    return run([*nsenter_argv(init_pid), *argv], check=check, timeout=timeout, env=HOST_ENV)


def host_spawn(init_pid: int, argv: Sequence[str], *, log: Path) -> None:
    """Start a daemon on a host that stays there, detached (``setsid -f``), stdio to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.run(
            argv_of([*nsenter_argv(init_pid), "setsid", "-f", *argv]),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(HOST_ENV),
            timeout=30,
            check=False,
        )
    if proc.returncode != 0:
        raise LabError(f"cannot start {argv[0]} on the host; see {log}")


def _start_holder(netns: str, name: str, log: Path) -> tuple[LabProcess, int]:
    holder = spawn(
        f"{name}-holder",
        [
            "nsenter",
            f"--net=/run/netns/{netns}",
            "--",
            "unshare",
            "--mount",
            "--uts",
            "--ipc",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
            "--kill-child",
            "--",
            "/usr/bin/python3",
            "-c",
            _INIT_CODE,
            INIT_MARKER,
            name,
        ],
        log=log,
    )
    found: list[int] = []

    def init_ready() -> bool:
        children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children")
        try:
            pids = [int(p) for p in children.read_text().split()]
        except (OSError, ValueError):
            return False
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if INIT_MARKER.encode() in cmdline:
                found.append(pid)
                return True
        return False

    if not wait_until(init_ready, timeout=10.0, interval=0.02):
        raise LabError(f"{name}: the host's pid 1 did not start; see {log}")
    return holder, found[0]


def _data_volume(config: LabConfig, image: Path) -> str:
    """Make the data image and attach it to a loop device; "" (tmpfs) when loop devices are
    missing or the lab asks for tmpfs."""
    if config.data_volume == "tmpfs":
        return ""
    with open(image, "wb") as fh:
        fh.truncate(config.data_size_mib * 1024 * 1024)
    run(["mkfs.ext4", "-F", "-q", "-m", "0", "-L", "data", str(image)])
    try:
        return run(["losetup", "--find", "--show", str(image)]).stdout.strip()
    except LabError:
        image.unlink(missing_ok=True)
        return ""


def _mount_filesystems(config: LabConfig, init_pid: int, name: str, loop_device: str) -> None:
    def on_host(*argv: str) -> None:
        host_exec(init_pid, argv)

    on_host("hostname", name)
    # The machine's /run/netns bind mounts were copied in: drop them, or this host would
    # keep the other hosts' network namespaces alive.
    host_exec(init_pid, ["umount", "--recursive", "--lazy", "/run/netns"], check=False)
    on_host("mount", "-t", "sysfs", "sysfs", "/sys")
    on_host("mount", "-t", "tmpfs", "-o", "mode=0755,size=32m", "tmpfs", "/run")
    on_host("mkdir", "-p", "/run/sshd", "/run/terry", "/run/.terry-lab/etc")
    on_host("mkdir", "-p", "-m", "1777", "/run/lock")
    on_host("mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", "tmpfs", "/run/terry")
    on_host("mount", "-t", "tmpfs", "-o", "mode=0700,size=64m", "tmpfs", "/run/.terry-lab/etc")
    on_host("mkdir", "/run/.terry-lab/etc/upper", "/run/.terry-lab/etc/work")
    on_host(
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        "lowerdir=/etc,upperdir=/run/.terry-lab/etc/upper,workdir=/run/.terry-lab/etc/work",
        "/etc",
    )
    on_host("mkdir", "-p", "/etc/app")
    on_host("mount", "-t", "tmpfs", "-o", "mode=1777,size=64m", "tmpfs", "/tmp")
    # root's home: bash runs ~/.bashrc for every command over SSH, and the machine's may do
    # anything (a version manager's init cost ~140 ms of CPU a command, more than the SSH
    # session itself): a host reads its own, empty one.
    on_host("mount", "-t", "tmpfs", "-o", "mode=0700,size=64m", "tmpfs", "/root")
    on_host("mount", "-t", "tmpfs", "-o", "mode=0755,size=1m", "tmpfs", "/srv")
    on_host("mkdir", "/srv/data")
    if loop_device:
        on_host("mount", "-t", "ext4", loop_device, "/srv/data")
    else:
        size = f"size={config.data_size_mib}m"
        on_host("mount", "-t", "tmpfs", "-o", f"mode=0755,{size}", "tmpfs", "/srv/data")


def _write_name_files(init_pid: int, name: str, peers: Mapping[str, str]) -> None:
    """The host's own /etc/hosts and resolv.conf (in its /etc overlay).

    Nothing answers DNS inside the lab, and Python's HTTP server, sshd and Ansible's
    fact gathering all look names up: without these every lookup waits for a timeout.
    """
    etc = Path(f"/proc/{init_pid}/root/etc")
    lines = ["127.0.0.1 localhost", f"127.0.1.1 {name}"]
    lines += [f"{address} {peer}" for peer, address in peers.items()]
    (etc / "hosts").write_text("\n".join(lines) + "\n", encoding="utf-8")
    resolv = etc / "resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    resolv.write_text(
        "# lab host: no DNS; names are in /etc/hosts\n"
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        encoding="utf-8",
    )


def _start_sshd(init_pid: int, name: str, address: str, authorized_keys: Path) -> None:
    """sshd with the host's own config, host key and authorized keys in its own /etc/ssh.

    Written through the host's root, so they land in its /etc overlay: the machine's
    /etc/ssh is untouched, and nothing sshd reads lies outside the host (its /tmp, say).
    """
    etc_ssh = Path(f"/proc/{init_pid}/root/etc/ssh")
    etc_ssh.mkdir(mode=0o755, exist_ok=True)
    key = etc_ssh / "ssh_host_ed25519_key"
    for stale in (key, key.with_name(key.name + ".pub")):
        stale.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}", "-f", str(key)])
    keys = etc_ssh / "authorized_keys"
    keys.mkdir(mode=0o755, exist_ok=True)
    (keys / "root").write_bytes(authorized_keys.read_bytes())
    (etc_ssh / "sshd_config").write_text(
        _SSHD_CONFIG.format(
            name=name,
            address=address,
            host_key="/etc/ssh/ssh_host_ed25519_key",
            authorized_keys="/etc/ssh/authorized_keys/%u",
        ),
        encoding="utf-8",
    )
    host_exec(init_pid, [SSHD, "-t"])
    host_exec(init_pid, [SSHD, "-E", "/run/sshd.log"])


def start_host(
    config: LabConfig,
    index: int,
    *,
    authorized_keys: Path,
    peers: Mapping[str, str],
    on_progress: Callable[[LabHost], None] | None = None,
) -> LabHost:
    """Build host number ``index`` (1-based) and start its daemons and its service.

    ``peers`` maps every lab host name (and the gateway's) to its address, for /etc/hosts.
    """
    name = config.host_name(index)
    address = config.host_address(index)
    netns = config.netns(name)
    hostdir = config.state_dir / "hosts" / name
    if hostdir.exists():
        shutil.rmtree(hostdir)
    hostdir.mkdir(parents=True, mode=0o700)

    image = hostdir / "data.img"
    loop_device = _data_volume(config, image)
    create_host_network(config, netns=netns, veth=config.veth(index), index=index)
    holder, init_pid = _start_holder(netns, name, hostdir / "holder.log")
    host = LabHost(
        name=name,
        address=address,
        environment="production" if index == 1 else "staging",
        tenant=config.tenant,
        netns=netns,
        veth=config.veth(index),
        holder=holder,
        init_pid=init_pid,
        image=image,
        loop_device=loop_device,
        services=(LabService(config.service_name, config.service_port, address),),
    )
    if on_progress is not None:
        on_progress(host)  # recorded before anything can fail, so `down` finds it
    _mount_filesystems(config, init_pid, name, loop_device)
    _write_name_files(init_pid, name, peers)
    _start_sshd(init_pid, name, address, authorized_keys)
    host_spawn(
        init_pid,
        [
            NODE_EXPORTER,
            f"--web.listen-address={address}:{config.node_exporter_port}",
            *_NODE_EXPORTER_FLAGS,
        ],
        log=hostdir / "node_exporter.log",
    )
    for service in host.services:
        host_exec(
            init_pid,
            [
                str(TERRY_SVC),
                "start",
                service.name,
                "--port",
                str(service.port),
                "--bind",
                service.bind,
                "--root",
                "/",
            ],
        )
    if start_time(holder.pid) != holder.start_time:
        raise LabError(f"{name}: the host died while starting; see {hostdir}")
    return host
