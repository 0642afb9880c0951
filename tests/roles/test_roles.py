"""The roles, run for real: ``ansible-playbook`` over the local connection against a scratch
host root (``terry_root``), with playbooks and extra-vars files shaped like Terry's.

One example host per module (``site.yml`` once); each remedy test breaks one thing, checks
that verify fails, that check mode changes nothing on disk but reports changes, that apply
fixes it and verify passes, and that rollback restores what apply changed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from terry.ports import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "playbooks" / "site.yml"
HOST = "web-01"
QUOTA_MB = 10
INJECTION = "{{ lookup('ansible.builtin.pipe','touch %s') }}"

if shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) is None:
    pytest.skip("ansible-playbook is not installed next to this Python", allow_module_level=True)


# ---------------------------------------------------------------- harness


@dataclass(frozen=True)
class Run:
    rc: int
    output: str

    def recap(self, key: str) -> int:
        found = re.search(rf"^{re.escape(HOST)}\s*:.*\b{key}=(\d+)", self.output, re.M)
        assert found, f"no PLAY RECAP for {HOST}:\n{self.output}"
        return int(found.group(1))

    @property
    def changed(self) -> int:
        return self.recap("changed")


@dataclass(frozen=True)
class Host:
    root: Path
    inventory: Path
    workdir: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "srv" / "data"

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "app" / "app.conf"

    @property
    def svc(self) -> Path:
        return self.root / "opt" / "terry" / "bin" / "terry-svc"

    def terry_svc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(self.svc), *args, "--root", str(self.root)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def playbook(self, playbook: Path, *args: str) -> Run:
        env = {
            **os.environ,
            "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_LOCAL_TEMP": str(self.workdir / "ansible-tmp"),
            "ANSIBLE_CONFIG": str(self.workdir / "no-ansible.cfg"),
        }
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                str(self.inventory),
                str(playbook),
                *args,
            ],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return Run(proc.returncode, proc.stdout + proc.stderr)


def remedy_playbook(directory: Path, role: str) -> Path:
    """Three plays on the host, as Terry renders them: apply, verify and rollback by tag."""
    plays = [
        {
            "name": f"{role}: {step}",
            "hosts": HOST,
            "gather_facts": False,
            "tags": tags,
            "tasks": [
                {"ansible.builtin.import_role": {"name": role, "tasks_from": step}},
            ],
        }
        for step, tags in (
            ("main", ["apply"]),
            ("verify", ["never", "verify"]),
            ("rollback", ["never", "rollback"]),
        )
    ]
    path = directory / f"remedy-{role}.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False), encoding="utf-8")
    return path


def vars_file(directory: Path, name: str, params: dict[str, object], proposal: int = 1) -> Path:
    """Parameters as ``!unsafe`` strings (a JSON string is a YAML double-quoted scalar)."""
    lines = [f"{key}: !unsafe {json.dumps(str(value))}" for key, value in params.items()]
    lines.append(f"terry_proposal_id: {proposal}")
    path = directory / f"{name}.vars.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every path under root except run/ (service pid and log files) with its content."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == "run" or rel.startswith("run/"):
            continue
        stat = path.lstat()
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[rel] = ("file", stat.st_mtime_ns, digest)
        else:
            found[rel] = ("dir", stat.st_mode, "")
    return found


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def http_get(port: int, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.read().decode()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Host:
    """One example host converged with site.yml; its service is stopped afterwards."""
    workdir = tmp_path_factory.mktemp("roles")
    root = workdir / ".terry" / "hosts" / HOST
    port = free_port()
    inventory = workdir / "inventory.yml"
    hostvars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "terry_root": str(root),
        "terry_environment": "staging",
        "terry_tenant": "acme",
        "terry_labels": {"team": "web"},
        "terry_disk_quota_mb": QUOTA_MB,
        "terry_services": {"web": {"port": port, "bind": "127.0.0.1"}},
        "service_restart_verify_retries": 2,
    }
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {HOST: hostvars}}}), encoding="utf-8")
    example = Host(root=root, inventory=inventory, workdir=workdir, port=port)
    run = example.playbook(SITE)
    try:
        assert run.rc == 0, run.output
        yield example
    finally:
        if example.svc.exists():
            example.terry_svc("stop", "web")


# ---------------------------------------------------------------- site.yml


def test_site_converges_and_check_mode_is_clean(host: Host) -> None:
    for rel in ("srv/data/log", "srv/data/tmp", "srv/data/.terry", "run/terry", "etc/app"):
        assert (host.root / rel).is_dir(), rel
    assert os.access(host.svc, os.X_OK)
    assert http_get(host.port) == "ok web\n"
    assert 'terry_service_up{service="web"} 1' in http_get(host.port, "/metrics")
    conf = host.conf.read_text(encoding="utf-8")
    assert "log_level = info" in conf
    assert "tenant = acme" in conf

    check = host.playbook(SITE, "--check", "--diff")
    assert check.rc == 0, check.output
    assert check.changed == 0, check.output


def test_site_check_mode_reports_drift(host: Host) -> None:
    pristine = host.conf.read_text(encoding="utf-8")
    host.conf.write_text(pristine + "debug_backdoor = true\n", encoding="utf-8")
    assert host.terry_svc("stop", "web").returncode == 0
    try:
        before = snapshot(host.root)
        check = host.playbook(SITE, "--check", "--diff")
        assert check.rc == 0, check.output
        assert check.changed == 2, check.output  # app.conf and the stopped service
        assert "-debug_backdoor = true" in check.output
        assert snapshot(host.root) == before
        assert host.terry_svc("status", "web").returncode == 3
    finally:
        host.conf.write_text(pristine, encoding="utf-8")
        assert host.terry_svc("start", "web", "--port", str(host.port)).returncode == 0


# ---------------------------------------------------------------- disk_cleanup


def fill_disk(host: Host) -> dict[str, Path]:
    """Over 90% of the quota in compressible logs, plus old and new scratch files."""
    log, tmp = host.data / "log", host.data / "tmp"
    line = b"2026-11-24T00:00:00Z INFO request served path=/ status=200 bytes=512\n"
    files = {}
    for n in (1, 2, 3):
        files[f"app.log.{n}"] = log / f"app.log.{n}"
        files[f"app.log.{n}"].write_bytes(line * (3 * 1024 * 1024 // len(line)))
    hour_ago, ten_days_ago = time.time() - 3600, time.time() - 10 * 86400
    files["idle.log"] = log / "idle.log"
    files["idle.log"].write_bytes(line * 1000)
    os.utime(files["idle.log"], (hour_ago, hour_ago))
    files["app.log"] = log / "app.log"  # being written: too recent to compress
    files["app.log"].write_bytes(line * 1000)
    files["old.tmp"] = tmp / "upload-1.tmp"
    files["old.tmp"].write_bytes(os.urandom(64 * 1024))
    os.utime(files["old.tmp"], (ten_days_ago, ten_days_ago))
    files["new.tmp"] = tmp / "upload-2.tmp"
    files["new.tmp"].write_bytes(b"fresh")
    return files


def test_disk_cleanup(host: Host) -> None:
    files = fill_disk(host)
    digests = {name: sha(path) for name, path in files.items()}
    playbook = remedy_playbook(host.workdir, "disk_cleanup")
    params = vars_file(
        host.workdir, "disk", {"path": "/srv/data", "threshold": 50, "max_age_days": 7}
    )
    extra = ("-e", f"@{params}")

    failing = host.playbook(playbook, *extra, "--tags", "verify")
    assert failing.rc != 0
    assert re.search(
        r"usage of /srv/data on web-01 is 9\d(\.\d)?%, still at or above the "
        r"threshold of 50%",
        failing.output,
    ), failing.output

    before = snapshot(host.root)
    check = host.playbook(playbook, *extra, "--check", "--diff")
    assert check.rc == 0, check.output
    assert check.changed > 0
    assert "app.log.1" in check.output and "upload-1.tmp" in check.output
    assert snapshot(host.root) == before

    apply = host.playbook(playbook, *extra)
    assert apply.rc == 0, apply.output
    for name in ("app.log.1", "app.log.2", "app.log.3", "idle.log"):
        assert not files[name].exists(), name
        packed = Path(f"{files[name]}.gz")
        assert hashlib.sha256(gzip.decompress(packed.read_bytes())).hexdigest() == digests[name]
    assert sha(files["app.log"]) == digests["app.log"]
    assert not files["old.tmp"].exists()
    assert files["new.tmp"].read_bytes() == b"fresh"
    manifest = json.loads((host.data / ".terry/1/disk_cleanup/manifest.json").read_text())
    assert sorted(Path(p).name for p in manifest["compressed"]) == [
        "app.log.1",
        "app.log.2",
        "app.log.3",
        "idle.log",
    ]
    assert [Path(p).name for p in manifest["removed"]] == ["upload-1.tmp"]

    passing = host.playbook(playbook, *extra, "--tags", "verify")
    assert passing.rc == 0, passing.output
    assert "below the threshold of 50%" in passing.output

    rollback = host.playbook(playbook, *extra, "--tags", "rollback")
    assert rollback.rc == 0, rollback.output
    for name in ("app.log.1", "app.log.2", "app.log.3", "idle.log", "app.log"):
        assert sha(files[name]) == digests[name], name
        assert not Path(f"{files[name]}.gz").exists()
    assert not files["old.tmp"].exists()  # removed files are not restored
    assert "1 removed file(s) are not restored" in rollback.output

    for path in files.values():
        path.unlink(missing_ok=True)


def _usage_percent(path: Path) -> float:
    """Use% of ``path``'s filesystem as df (and the role) compute it."""
    fs = os.statvfs(path)
    used = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
    return 100 * used / max(1, used + fs.f_bavail * fs.f_frsize)


def _said_usage(run: Run) -> float:
    found = re.search(r"usage of /srv/data on web-01 is ([0-9.]+)%", run.output)
    assert found, run.output
    return float(found.group(1))


def test_disk_cleanup_verify_in_the_fix_run_reads_the_fix_statvfs(host: Host) -> None:
    """On a real filesystem (no quota), verify in the apply's own run asserts on what the
    fix's process read from the kernel once done instead of measuring again (one Python
    process less a host); a verify run of its own still measures. Both agree with df."""
    hostvars = yaml.safe_load(host.inventory.read_text(encoding="utf-8"))
    del hostvars["all"]["hosts"][HOST]["terry_disk_quota_mb"]
    inventory = host.workdir / "no-quota.yml"
    inventory.write_text(yaml.safe_dump(hostvars), encoding="utf-8")
    unquoted = replace(host, inventory=inventory)
    files = fill_disk(host)
    playbook = remedy_playbook(host.workdir, "disk_cleanup")
    usage = _usage_percent(host.data)
    assert 1 <= usage < 98, f"the test's filesystem is {usage:.1f}% full"

    def run(threshold: int, tags: str) -> Run:
        params = {"path": "/srv/data", "threshold": threshold, "max_age_days": 7}
        extra = ("-e", f"@{vars_file(host.workdir, 'fs', params, proposal=7)}")
        return unquoted.playbook(playbook, *extra, "--tags", tags, "-v")

    try:
        fixed = run(99, "apply,verify")
        assert fixed.rc == 0, fixed.output
        assert not files["old.tmp"].exists()
        assert "(statvfs read by the fix once done)" in fixed.output
        assert re.search(r"TASK \[disk_cleanup : Measure the usage\][^\n]*\nskipping", fixed.output)
        assert abs(_said_usage(fixed) - _usage_percent(host.data)) < 1.5, fixed.output

        alone = run(99, "verify")
        assert alone.rc == 0, alone.output
        assert "statvfs read by the fix" not in alone.output  # measured: no fix ran
        assert abs(_said_usage(alone) - _said_usage(fixed)) < 1.5, alone.output

        short = run(max(1, int(usage) - 1), "apply,verify")  # nothing left to free
        assert short.rc != 0
        assert "still at or above the threshold" in short.output, short.output
        assert "(statvfs read by the fix once done)" not in short.output
    finally:
        for path in files.values():
            path.unlink(missing_ok=True)
        for path in host.data.rglob("*.gz"):
            path.unlink()


def aged(path: Path, content: bytes, days: float) -> Path:
    """Write ``content`` to ``path`` (parents made) and date it ``days`` back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    when = time.time() - days * 86400
    os.utime(path, (when, when))
    return path


def estimate(run: Run) -> tuple[bool, str]:
    """The estimate the role showed: whether it is enough, and its summary."""
    found = re.search(r'"msg": "(enough|NOT ENOUGH): (would free [^"]*)"', run.output)
    assert found, run.output
    return found.group(1) == "enough", found.group(2)


def test_disk_cleanup_ages_out_rotated_logs_and_core_dumps(host: Host) -> None:
    """What operators keep on data volumes and the remedy may remove: compressed rotated
    logs past retention (by name, in log directories, next to their log) and old core
    dumps. Nothing else: not what is younger, not other files next to a log, not .terry/."""
    data = host.data
    blob = os.urandom(1024 * 1024)  # does not compress: only removing frees it
    gone = (
        [aged(data / "log" / f"app.log.{n}.gz", blob, 30) for n in (2, 3, 4, 5, 6)]
        + [
            aged(data / "log" / "app.log-20261001.gz", blob[:4096], 30),
            aged(data / "log" / "worker.1", blob[:4096], 30),  # in a log directory
            aged(data / "app" / "worker-20261001.gz", blob[:4096], 30),  # next to worker.log
            aged(data / "app" / "worker.log.old", blob[:4096], 30),
            aged(data / "app" / "core", blob[:8192], 5),
            aged(data / "app" / "core.4242", blob[:8192], 5),
        ]
    )
    kept = [
        aged(data / "log" / "app.log.1.gz", blob, 2),  # within retention
        aged(data / "app" / "worker.log", b"live\n", 0),
        aged(data / "app" / "libworker.so.1", blob[:4096], 30),  # next to a log, not its copy
        aged(data / "app" / "backup-20261001.tar.gz", blob[:4096], 30),
        aged(data / "app" / "core.4243", blob[:8192], 1),  # a fresh core dump
        aged(data / "app" / "score.1", blob[:4096], 30),
        aged(data / ".terry" / "7" / "other" / "app.log.1.gz", blob[:4096], 30),
    ]
    playbook = remedy_playbook(host.workdir, "disk_cleanup")
    params = {"path": "/srv/data", "threshold": 50, "log_retention_days": 14}
    extra = ("-e", f"@{vars_file(host.workdir, 'aged', params, proposal=3)}")
    try:
        failing = host.playbook(playbook, *extra, "--tags", "verify")
        assert failing.rc != 0, failing.output

        before = snapshot(host.root)
        check = host.playbook(playbook, *extra, "--check", "--diff")
        assert check.rc == 0, check.output
        assert snapshot(host.root) == before
        enough, summary = estimate(check)
        assert enough, summary
        assert re.match(r"would free 5\.\d MiB \(11 file\(s\) to remove: 5\.\d MiB", summary)
        assert re.search(r"MiB must go to get /srv/data on web-01 under 50% \(now", summary)

        apply = host.playbook(playbook, *extra)
        assert apply.rc == 0, apply.output
        assert [p.name for p in gone if p.exists()] == []
        assert [p.name for p in kept if not p.exists()] == []
        manifest = json.loads((data / ".terry/3/disk_cleanup/manifest.json").read_text())
        assert sorted(manifest["removed"]) == sorted(str(p) for p in gone)

        passing = host.playbook(playbook, *extra, "--tags", "verify")
        assert passing.rc == 0, passing.output
    finally:
        for path in gone + kept:
            path.unlink(missing_ok=True)


def test_disk_cleanup_clears_package_caches_and_system_logs_under_var(host: Host) -> None:
    """With path /var: downloaded packages (not one being downloaded), /var/log's rotated
    logs and systemd-coredump's dumps; package_caches=keep leaves the packages."""
    var = host.root / "var"
    blob = os.urandom(64 * 1024)
    packages = [
        aged(var / "cache/apt/archives/curl_8.5.0_amd64.deb", blob, 3),
        aged(var / "cache/dnf/fedora-x/packages/curl-8.5.0.rpm", blob, 3),
    ]
    downloading = aged(var / "cache/apt/archives/partial/git_2.43_amd64.deb", blob, 0)
    system = [
        aged(var / "log/syslog.2.gz", blob, 30),
        aged(var / "log/messages-20261001", blob, 30),
        aged(var / "lib/systemd/coredump/core.web.0.abc.4242.1700000000.zst", blob, 5),
    ]
    playbook = remedy_playbook(host.workdir, "disk_cleanup")
    try:
        keep = vars_file(host.workdir, "var-keep", {"path": "/var", "package_caches": "keep"})
        run = host.playbook(playbook, "-e", f"@{keep}")
        assert run.rc == 0, run.output
        assert all(p.exists() for p in packages) and downloading.exists()
        assert [p.name for p in system if p.exists()] == []

        remove = vars_file(host.workdir, "var", {"path": "/var"}, proposal=4)
        run = host.playbook(playbook, "-e", f"@{remove}")
        assert run.rc == 0, run.output
        assert [p.name for p in packages if p.exists()] == []
        assert downloading.exists()
    finally:
        shutil.rmtree(var, ignore_errors=True)


def test_disk_cleanup_estimate_says_when_the_fix_falls_short(host: Host) -> None:
    """A disk full of files the remedy may not touch: check mode passes (the remedy works)
    and says how much it would free against how much must go."""
    keep = host.data / "keep.bin"
    keep.write_bytes(os.urandom(8 * 1024 * 1024))  # 80% of the 10 MiB quota
    old = aged(host.data / "tmp" / "upload-9.tmp", os.urandom(256 * 1024), 30)
    playbook = remedy_playbook(host.workdir, "disk_cleanup")
    extra = ("-e", f"@{vars_file(host.workdir, 'short', {'path': '/srv/data', 'threshold': 50})}")
    try:
        check = host.playbook(playbook, *extra, "--check", "-v")
        assert check.rc == 0, check.output
        enough, summary = estimate(check)
        assert not enough, summary
        assert re.fullmatch(
            r"would free 0\.2 MiB \(1 file\(s\) to remove: 0\.2 MiB, 0 log\(s\) to compress: "
            r"0\.0 MiB\); 3\.\d MiB must go to get /srv/data on web-01 under 50% \(now 8\d\.\d%\)",
            summary,
        ), summary
        # the fact Terry reads from the run's events
        assert re.search(r'"terry_estimate": \{"enough": false, "needed_bytes": \d+', check.output)
    finally:
        keep.unlink(missing_ok=True)
        old.unlink(missing_ok=True)


# ---------------------------------------------------------------- service_restart


def test_service_restart(host: Host) -> None:
    playbook = remedy_playbook(host.workdir, "service_restart")
    extra = ("-e", f"@{vars_file(host.workdir, 'service', {'service': 'web'})}")
    assert host.terry_svc("stop", "web").returncode == 0

    failing = host.playbook(playbook, *extra, "--tags", "verify")
    assert failing.rc != 0
    assert "Connection refused" in failing.output

    check = host.playbook(playbook, *extra, "--check", "--diff")
    assert check.rc == 0, check.output
    assert check.changed == 1, check.output
    assert host.terry_svc("status", "web").returncode == 3

    apply = host.playbook(playbook, *extra)
    assert apply.rc == 0, apply.output
    assert host.terry_svc("status", "web").returncode == 0
    assert http_get(host.port) == "ok web\n"

    passing = host.playbook(playbook, *extra, "--tags", "verify")
    assert passing.rc == 0, passing.output
    assert "terry-svc status: web is running" in passing.output

    assert host.terry_svc("stop", "web").returncode == 0
    rollback = host.playbook(playbook, *extra, "--tags", "rollback")
    assert rollback.rc == 0, rollback.output
    assert rollback.changed == 1
    assert http_get(host.port) == "ok web\n"


def test_memory_pressure(host: Host) -> None:
    playbook = remedy_playbook(host.workdir, "service_restart")
    extra = ("-e", f"@{vars_file(host.workdir, 'memory', {'service': 'web', 'max_rss_mb': 60})}")
    assert http_get(host.port, "/debug/alloc?mb=80") == "holding 80 MiB\n"
    pid = (host.root / "run/terry/web.pid").read_text().strip()

    failing = host.playbook(playbook, *extra, "--tags", "verify")
    assert failing.rc != 0
    assert re.search(r"web uses \d+ kB, max_rss_mb is 60", failing.output), failing.output

    apply = host.playbook(playbook, *extra)
    assert apply.rc == 0, apply.output
    assert (host.root / "run/terry/web.pid").read_text().strip() != pid

    passing = host.playbook(playbook, *extra, "--tags", "verify")
    assert passing.rc == 0, passing.output
    assert "below 60 MiB" in passing.output


def test_service_restart_rejects_unknown_service(host: Host) -> None:
    playbook = remedy_playbook(host.workdir, "service_restart")
    extra = ("-e", f"@{vars_file(host.workdir, 'nope', {'service': 'db'})}")
    run = host.playbook(playbook, *extra)
    assert run.rc != 0
    assert "service=db is not one of the services of web-01: web" in run.output


# ---------------------------------------------------------------- managed_file


def test_managed_file(host: Host) -> None:
    playbook = remedy_playbook(host.workdir, "managed_file")
    extra = ("-e", f"@{vars_file(host.workdir, 'file', {'file': 'app.conf'})}")
    pristine = host.conf.read_text(encoding="utf-8")
    drifted = pristine.replace("max_connections = 100", "max_connections = 5") + "debug = 1\n"
    host.conf.write_text(drifted, encoding="utf-8")
    backup = host.data / ".terry/1/managed_file/app.conf"

    try:
        failing = host.playbook(playbook, *extra, "--tags", "verify")
        assert failing.rc != 0
        assert "/etc/app/app.conf on web-01 still differs from its template" in failing.output

        before = snapshot(host.root)
        check = host.playbook(playbook, *extra, "--check", "--diff")
        assert check.rc == 0, check.output
        assert check.changed > 0
        assert "-max_connections = 5" in check.output
        assert "+max_connections = 100" in check.output
        assert snapshot(host.root) == before

        apply = host.playbook(playbook, *extra)
        assert apply.rc == 0, apply.output
        assert host.conf.read_text(encoding="utf-8") == pristine
        assert backup.read_text(encoding="utf-8") == drifted

        again = host.playbook(playbook, *extra)  # a second run keeps the first backup
        assert again.rc == 0, again.output
        assert again.changed == 0, again.output
        assert backup.read_text(encoding="utf-8") == drifted

        passing = host.playbook(playbook, *extra, "--tags", "verify")
        assert passing.rc == 0, passing.output
        assert "matches its template" in passing.output

        rollback = host.playbook(playbook, *extra, "--tags", "rollback")
        assert rollback.rc == 0, rollback.output
        assert host.conf.read_text(encoding="utf-8") == drifted
    finally:
        host.conf.write_text(pristine, encoding="utf-8")


# ---------------------------------------------------------------- untrusted values


def test_unsafe_path_stays_data(host: Host) -> None:
    """Terry's playbook shape: the lookup in an !unsafe path never runs."""
    marker = host.workdir / "pwned"
    playbook = remedy_playbook(host.workdir, "disk_cleanup")
    params = vars_file(host.workdir, "evil", {"path": INJECTION % marker}, proposal=99)
    extra = ("-e", f"@{params}")
    for tags in ("apply", "verify", "rollback"):
        run = host.playbook(playbook, *extra, "--tags", tags)
        assert run.rc != 0  # the role rejects the path
        assert "disk_cleanup needs an absolute, normalised path" in run.output
        assert not marker.exists(), tags


def test_unsafe_values_stay_data_in_every_task(host: Host) -> None:
    """With every error ignored, the values travel through every task; nothing runs them."""
    markers = {name: host.workdir / f"pwned-{name}" for name in ("path", "service", "file")}
    tasks = [
        {
            "ansible.builtin.import_role": {"name": role, "tasks_from": step},
            "ignore_errors": True,
        }
        for role in ("disk_cleanup", "service_restart", "managed_file")
        for step in ("main", "verify", "rollback")
    ]
    playbook = host.workdir / "everything.yml"
    playbook.write_text(
        yaml.safe_dump([{"hosts": HOST, "gather_facts": False, "tasks": tasks}]),
        encoding="utf-8",
    )
    params = {name: INJECTION % marker for name, marker in markers.items()}
    evil = vars_file(host.workdir, "evil-all", params, proposal=99)
    run = host.playbook(playbook, "-e", f"@{evil}")
    assert run.recap("ignored") > 0, run.output
    assert [m.name for m in markers.values() if m.exists()] == []
    assert http_get(host.port) == "ok web\n"

    # Control: the same value without !unsafe IS templated, so the test above can fail.
    plain = host.workdir / "plain.vars.yml"
    plain.write_text(
        yaml.safe_dump({"path": INJECTION % markers["path"], "terry_proposal_id": 99}),
        encoding="utf-8",
    )
    disk = remedy_playbook(host.workdir, "disk_cleanup")
    host.playbook(disk, "-e", f"@{plain}", "--tags", "verify")
    assert markers["path"].exists()
