"""Drift scan time on the lab: ``terry drift scan`` against plain ``ansible-playbook
--check --diff playbooks/site.yml`` on the same hosts, in the same run.

For each lab size (default 3, 10 and 30 hosts; ``--quick``: 3 and 10) the script brings a
lab up (root), commits its inventory, converges it (``terry drift fix`` + approval), then
times R rounds (default 3), interleaved:

- plain: ``ansible-playbook`` as a subprocess with the argv and environment of Terry's
  own scan run (read from its ansible-runner artifacts), but ``playbooks/site.yml`` itself
  instead of Terry's probe play: what an operator would run by hand;
- Terry's scan: ``run_scan`` in process (the probe + site.yml in one ansible run, items,
  the comparison with the last scan, the store);
- ``terry drift scan`` (CLI): a new process, the same plus Python start-up and the table.

Targets: Terry's scan under 1.15x plain; scan time growing sub-linearly with hosts up to
the fork count (runner.forks, 10).

    sudo python bench/drift.py [--quick] [--sizes 3,10,30] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from _common import Replay, load_note, table, terry

from terry import lab
from terry.config import load_config
from terry.drift.scan import run_scan
from terry.gitops.init import init_repository
from terry.gitops.repo import Repo
from terry.store import Store

NAMES = {
    "bridge": "terrylabb0",
    "subnet": "10.76.0.0/24",
    "netns_prefix": "terrybench-",
    "veth_prefix": "tlabb",
}


def _converge(repo: Path) -> None:
    fixed = json.loads(terry(repo, "drift", "fix", "--output", "json").stdout)
    if fixed.get("state") == "awaiting_review":
        terry(repo, "proposals", "approve", str(fixed["proposal_id"]))  # as whoever runs it


def _plain(replay: Replay) -> float:
    argv = [*replay.argv[:-1], str(replay.tree / "playbooks" / "site.yml")]
    env = {**os.environ, **replay.env}
    started = time.monotonic()
    done = subprocess.run(argv, cwd=replay.tree, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"plain ansible-playbook exited {done.returncode}: {done.stdout[-800:]}")
    return elapsed


def measure(size: int, rounds: int, scratch: Path) -> dict[str, float]:
    config = lab.LabConfig(state_dir=scratch / f"lab-{size}", **NAMES)
    repo = init_repository(scratch / f"ops-{size}").path
    lab.down(config)
    started = time.monotonic()
    lab.up(config, hosts=size, repo=repo)
    up_seconds = time.monotonic() - started
    try:
        settings = yaml.safe_load((repo / "terry.yml").read_text())
        settings["inventory"] = ["inventories/lab"]
        (repo / "terry.yml").write_text(yaml.safe_dump(settings))
        Repo(repo).commit_paths(["terry.yml", "inventories/lab"], "lab inventory")
        _converge(repo)
        terry_config = load_config(repo)
        store = Store(terry_config.store_url)
        first = run_scan(terry_config, store)  # warm-up; its artifacts give the replay
        runs = sorted((terry_config.state_dir / "runs").glob("drift-*"))
        tree = Repo(repo).tree(first.commit)
        replay = Replay.of_run(runs[-1], tree)
        plain, scan, cli = [], [], []
        for n in range(rounds):
            order = [("plain", "scan", "cli"), ("scan", "cli", "plain"), ("cli", "plain", "scan")]
            for way in order[n % 3]:
                if way == "plain":
                    plain.append(_plain(replay))
                elif way == "scan":
                    t = time.monotonic()
                    outcome = run_scan(terry_config, store)
                    scan.append(time.monotonic() - t)
                    assert all(h.status.value == "clean" for h in outcome.hosts.values()), {
                        k: v.status.value for k, v in outcome.hosts.items()
                    }
                else:
                    t = time.monotonic()
                    terry(repo, "drift", "scan", "--output", "json")
                    cli.append(time.monotonic() - t)
        store.dispose()
        print(f"  {size} hosts: lab up {up_seconds:.1f} s, plain {plain}, scan {scan}, cli {cli}")
        return {
            "hosts": size,
            "plain": statistics.median(plain),
            "scan": statistics.median(scan),
            "cli": statistics.median(cli),
        }
    finally:
        lab.down(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 and 10 hosts, 1 round")
    parser.add_argument("--sizes", help="comma-separated lab sizes (default 3,10,30)")
    parser.add_argument("--rounds", type=int, help="timed rounds per way (default 3)")
    args = parser.parse_args()
    sizes = [int(s) for s in (args.sizes or ("3,10" if args.quick else "3,10,30")).split(",")]
    rounds = args.rounds or (1 if args.quick else 3)
    print(load_note())
    results = []
    with tempfile.TemporaryDirectory(prefix="terry-bench-drift-") as scratch:
        for size in sizes:
            results.append(measure(size, rounds, Path(scratch)))
    print(f"\ndrift scan on the lab, median of {rounds} round(s), seconds")
    rows = []
    for r in results:
        rows.append(
            [
                str(r["hosts"]),
                f"{r['plain']:.2f}",
                f"{r['scan']:.2f}",
                f"{r['scan'] / r['plain']:.2f}x",
                f"{r['cli']:.2f}",
                f"{r['scan'] / r['hosts']:.3f}",
            ]
        )
    print(
        table(
            [
                "hosts",
                "plain site.yml --check",
                "terry scan",
                "ratio",
                "terry drift scan (CLI)",
                "scan s/host",
            ],
            rows,
        )
    )
    worst = max(r["scan"] / r["plain"] for r in results)
    print(
        f"target: Terry's scan < 1.15x plain: worst {worst:.2f}x "
        f"({'met' if worst < 1.15 else 'NOT met'})"
    )
    if len(results) > 1:
        a, b = results[0], results[1]
        growth = (b["scan"] / a["scan"]) / (b["hosts"] / a["hosts"])
        verdict = "sub-linear" if growth < 1 else "NOT sub-linear"
        print(
            f"growth {a['hosts']} → {b['hosts']} hosts: time x{b['scan'] / a['scan']:.2f} "
            f"for hosts x{b['hosts'] / a['hosts']:.2f} ({verdict})"
        )


if __name__ == "__main__":
    main()
