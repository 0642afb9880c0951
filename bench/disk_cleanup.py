"""The disk remedy over many files: one clean-up task over the file set against the per-file
loops it replaced (``loop:`` over ``ansible.builtin.file`` and ``command: gzip``), same run.

The old role is ``roles/disk_cleanup`` at ``--base`` (default ``HEAD``; the per-file loops
are at ``--base 2ce2f93~1``), read with ``git archive``; the new one is the working tree's.
Each round makes the same files on one scratch host (Ansible's local connection, no
root): N/2 stale scratch files under ``/srv/data/tmp`` and N/2 rotated logs under
``/srv/data/log``; then runs the remedy's apply play (``ansible-playbook``, pipelining on,
as Terry runs it) with the old role and with the new one, interleaved (old, new, then new,
old, ...). Prints each side's median seconds, new ÷ old, and the floor: the same play with
no files to touch (what the remedy costs by itself), measured in the same run.

    .venv/bin/python bench/disk_cleanup.py [--files 2000] [--rounds 2] [--base REV]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import ANSIBLE_PLAYBOOK, load_note, table

REPO = Path(__file__).resolve().parent.parent
HOST = "bench-01"


def _old_roles(base: str, scratch: Path) -> Path:
    target = scratch / "old-roles"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", base, "roles"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "roles"


def _make_files(data: Path, n: int) -> None:
    shutil.rmtree(data, ignore_errors=True)
    (data / "tmp").mkdir(parents=True)
    (data / "log").mkdir()
    old = time.time() - 30 * 86400
    for i in range(n // 2):
        path = data / "tmp" / f"upload-{i:05d}.tmp"
        path.write_bytes(b"x" * 2048)
        os.utime(path, (old, old))
        (data / "log" / f"worker-{i:05d}.log.1").write_text(f"worker {i} request ok\n" * 100)


def _run(roles: Path, scratch: Path, playbook: Path, params: Path) -> float:
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(roles),
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_CONFIG": str(scratch / "no-ansible.cfg"),
    }
    argv = [ANSIBLE_PLAYBOOK, "-i", str(scratch / "inventory.yml"), str(playbook)]
    started = time.monotonic()
    done = subprocess.run(
        [*argv, "-e", f"@{params}"], env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"ansible-playbook exited {done.returncode}: {done.stdout[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--base", default="HEAD", help="the revision with the old role")
    args = parser.parse_args()
    print(f"bench/disk_cleanup.py: {args.files} files, {args.rounds} round(s); {load_note()}")
    scratch = Path(tempfile.mkdtemp(prefix="terry-bench-disk-"))
    try:
        root = scratch / "host"
        data = root / "srv" / "data"
        hostvars = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "terry_root": str(root),
            "disk_cleanup_vacuum_journal": False,
        }
        (scratch / "inventory.yml").write_text(
            yaml.safe_dump({"all": {"hosts": {HOST: hostvars}}}), encoding="utf-8"
        )
        playbook = scratch / "apply.yml"
        play = {
            "hosts": HOST,
            "gather_facts": False,
            "tasks": [
                {"ansible.builtin.import_role": {"name": "disk_cleanup", "tasks_from": "main"}}
            ],
        }
        playbook.write_text(yaml.safe_dump([play]), encoding="utf-8")
        params = scratch / "vars.yml"
        params.write_text(
            'path: !unsafe "/srv/data"\nthreshold: 80\nmax_age_days: 7\n', encoding="utf-8"
        )
        sides = {
            "old (per-file loops)": _old_roles(args.base, scratch),
            "new (one task)": REPO / "roles",
        }
        seconds: dict[str, list[float]] = {name: [] for name in sides}
        floors: dict[str, list[float]] = {name: [] for name in sides}
        proposal = 0
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for name in order:
                proposal += 1
                _make_files(data, args.files)
                seconds[name].append(_run_with_id(sides[name], scratch, playbook, params, proposal))
                left = sum(1 for _ in (data / "tmp").iterdir()) + sum(
                    1 for p in (data / "log").iterdir() if not p.name.endswith(".gz")
                )
                if left:
                    raise RuntimeError(f"{name}: {left} file(s) left untouched")
                proposal += 1
                _make_files(data, 0)
                floors[name].append(_run_with_id(sides[name], scratch, playbook, params, proposal))
        rows = []
        for name in sides:
            rows.append([name, statistics.median(seconds[name]), statistics.median(floors[name])])
        print(table(["role", f"{args.files} files (s)", "no files (s)"], rows))
        old, new = (statistics.median(seconds[n]) for n in sides)
        print(f"new ÷ old: {new / old:.2f} ({old - new:.1f} s less for {args.files} files)")
        print(f"{load_note()}; figures from a loaded machine are indicative")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _run_with_id(roles: Path, scratch: Path, playbook: Path, params: Path, proposal: int) -> float:
    with_id = scratch / "vars-id.yml"
    with_id.write_text(params.read_text() + f"terry_proposal_id: {proposal}\n", encoding="utf-8")
    return _run(roles, scratch, playbook, with_id)


if __name__ == "__main__":
    raise SystemExit(main())
