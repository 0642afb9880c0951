"""Storm on lab hosts (issue 18): N staging disks fill at once; Terry's storm against plain
``ansible-playbook --check --diff`` plus one apply over the same hosts, in the same run.

Brings up a lab of its own (root; N staging hosts plus lab-01, production, left alone),
Terry pointed at it (its inventory and Prometheus, as ``terry demo`` does), then, per round:

- **storm**: fill every staging disk (``terry.lab.break_host``), feed one Alertmanager
  group with a DiskUsageHigh alert per host to the pipeline in this process, which folds
  them into one proposal (one dry run, one decision, an apply in canary waves with
  ``canary.watch`` = ``--watch``, verify, Prometheus); seconds from the alerts to the last
  host verified, proposals, ansible runs, each host's wait (alert → verified);
- **plain**: empty and refill the disks, then a storm's own dry run and apply replayed by
  hand (``_common.Replay``: the same ``ansible-playbook`` argv and environment Terry's
  applier used) over every host at once: ``--check --diff``, then the apply with
  ``--tags apply`` (no verify play, no waves);
- **one each** (``--one-each``): the path before storm folding, one proposal per incident
  carried one after the other (``storm.window`` 0).

Sides alternate over ``--rounds`` (storm then plain, then plain then storm). Prints the
table, storm ÷ plain (target ≤ 1.1x, plus the watch window with waves on) and
Terry's dry run ÷ plain ``--check --diff`` (target < 1.15x), and any proposal made for a
host already fixed (target 0).

    sudo .venv/bin/python bench/storm_lab.py [--hosts 10] [--rounds 1] [--watch 0] [--one-each]
        [--no-waves] [--timeline] [--keep]

Exits 0 when every host ended verified on every side, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _common import Replay, load_note, pct, table
from storm import _side

from terry import lab
from terry.appliers.ansible import _probe_then
from terry.config import load_config
from terry.demo.lab import point_at_lab
from terry.gitops.init import init_repository
from terry.gitops.repo import Repo

LAB = lab.LabConfig(
    state_dir=Path("/var/lib/terry-lab-storm"),
    bridge="terrylabs0",
    subnet="10.86.0.0/24",
    netns_prefix="terrystorm-",
    veth_prefix="tlabs",
)


def _alerts(hosts: list[str], tag: str) -> str:
    from _common import alert, payload

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return payload([alert(f"{tag}-{h}", h, starts=now) for h in hosts])


def _settings(repo: Path, staging: list[str], watch: float, waves: bool) -> None:
    """Up to every staging host merges without a person (the bench measures machines);
    without ``waves``, ``canary.min_hosts`` covers every host: one apply, no canary."""
    data_path = repo / "policies" / "data.json"
    data = json.loads(data_path.read_text())
    data["terry"]["settings"]["max_auto_hosts"] = len(staging)
    data_path.write_text(json.dumps(data, indent=2) + "\n")
    path = repo / "terry.yml"
    config = yaml.safe_load(path.read_text())
    config["canary"] = {"watch": watch, **({} if waves else {"min_hosts": len(staging)})}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    Repo(repo).commit_paths(["policies/data.json", "terry.yml"], "bench: the storm's settings")


def _refill(state: lab.LabState, hosts: list[str]) -> None:
    for h in hosts:
        lab.heal_host(state, h, "disk")  # the same files every side: no .gz of the last
    for h in hosts:
        lab.break_host(state, h, "disk")


def _terry(
    repo: Path, state: lab.LabState, hosts: list[str], name: str, tag: str
) -> dict[str, Any]:
    """bench/storm.py's side, on lab hosts: disks emptied and filled again first."""
    return _side(
        repo, hosts, name, tag, fill=lambda _c, h: _refill(state, h), body=_alerts(hosts, tag)
    )


def _plain(
    repo: Path, state: lab.LabState, hosts: list[str], storm: dict[str, Any]
) -> dict[str, Any]:
    """The storm's own check and apply runs, replayed by hand over every host at once."""
    config = load_config(repo, environ={})
    kinds = {kind: run_id for run_id, kind, _s, _st in storm["run_rows"]}
    check_id = min(i for i, k, _s, _st in storm["run_rows"] if k == "check")
    apply_id = max(i for i, k, _s, _st in storm["run_rows"] if k == "apply")
    assert kinds, "the storm recorded no runs"
    replays = []
    for run_id, tags in ((check_id, None), (apply_id, "apply")):
        run_dir = config.state_dir / "runs" / str(run_id)
        command = json.loads(next(run_dir.glob("artifacts/*/command")).read_text())
        replay = Replay.of_run(run_dir, Path(command["cwd"]))
        argv = list(replay.argv)
        if "--limit" in argv:
            argv[argv.index("--limit") + 1] = ",".join(hosts)
        if tags is not None and "--tags" in argv:
            argv[argv.index("--tags") + 1] = tags
        if tags is not None:
            argv[-1] = str(
                _without_hold(replay.tree / argv[-1], hosts, config.runner.ansible_env())
            )
        replays.append(Replay(**{**replay.__dict__, "argv": argv}))
    _refill(state, hosts)
    clock = time.monotonic()
    replays[0].run_plain()
    check = time.monotonic() - clock
    replays[1].run_plain()
    seconds = time.monotonic() - clock
    return {"side": "plain check + apply", "seconds": seconds, "check": check}


def _without_hold(playbook: Path, hosts: list[str], env: dict[str, str]) -> Path:
    """The playbook plain runs for an apply of Terry's: Terry's identity probe over every
    host, then the proposal's playbook, as Terry's run had it; without the hold a wave
    started early waits in for Terry's go (plain waits for no one)."""
    found = re.search(r"import_playbook: (\".*\")", playbook.read_text(encoding="utf-8"))
    if found is None:  # not a wrapper of Terry's: the proposal's playbook itself
        return playbook
    plain = playbook.with_name(f"plain-{playbook.name}")
    strategy = env.get("ANSIBLE_STRATEGY", "linear")
    plain.write_text(
        _probe_then(sorted(hosts), Path(json.loads(found.group(1))), strategy), encoding="utf-8"
    )
    return plain


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=10, help="staging hosts (10; at most 39)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--watch", type=float, default=0.0, help="canary.watch, seconds")
    parser.add_argument("--one-each", action="store_true", help="also one proposal per incident")
    parser.add_argument(
        "--no-waves", action="store_true", help="no canary: every host in one apply"
    )
    parser.add_argument(
        "--timeline", action="store_true", help="print the last storm's steps, second by second"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the GitOps repository and Terry's run artifacts (the path is printed)",
    )
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="terry-bench-storm-lab-"))
    repo = init_repository(scratch / "ops", example=False).path
    began = time.monotonic()
    state = lab.up(LAB, hosts=args.hosts + 1, repo=repo)
    print(f"lab up with {args.hosts + 1} hosts in {time.monotonic() - began:.0f}s")
    staging = [h.name for h in state.hosts if h.environment == "staging"]
    rows: list[dict[str, Any]] = []
    try:
        point_at_lab(repo, state)
        _settings(repo, staging, args.watch, waves=not args.no_waves)
        storm: dict[str, Any] | None = None
        for n in range(args.rounds):
            # sides alternate (the plain side replays the storm's runs: it needs one first)
            if storm is not None and n % 2 == 1:
                rows.append(_plain(repo, state, staging, storm))
            storm = _terry(repo, state, staging, "storm", f"r{n}-storm")
            rows.append(storm)
            if n % 2 == 0:
                rows.append(_plain(repo, state, staging, storm))
            if args.one_each:
                rows.append(_terry(repo, state, staging, "one each", f"r{n}-each"))
    finally:
        lab.down(LAB)
        if args.keep:
            print(f"kept: {scratch} (Terry's runs under {repo}/.terry/runs)")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"storm over {len(staging)} lab hosts, {args.rounds} round(s), "
        f"{'no waves' if args.no_waves else f'canary.watch {args.watch:g}s'}; {load_note()}"
    )
    keys = (
        "seconds",
        "own_cpu",
        "proposals",
        "runs",
        "verified",
        "refixes",
        "wait_p50",
        "wait_max",
    )
    print(table(("side", *keys), [(r["side"], *(r.get(k, "") for k in keys)) for r in rows]))
    for r in rows:
        if r["side"] == "storm":
            print(
                "storm's runs (id, kind, seconds): "
                + ", ".join(f"{i} {k} {s:.1f}s" for i, k, s, _st in r["run_rows"])
            )
    if args.timeline:
        last = [r for r in rows if r["side"] == "storm"][-1]
        print("\nthe last storm's steps (seconds since the alerts):")
        for at, said in last["timeline"]:
            print(f"  {at:6.1f}  {said}")
    storm_s = pct([r["seconds"] for r in rows if r["side"] == "storm"], 50)
    plain_s = pct([r["seconds"] for r in rows if r["side"] == "plain check + apply"], 50)
    check_t = pct(
        [
            s
            for r in rows
            if r["side"] == "storm"
            for _i, k, s, _st in r["run_rows"]
            if k == "check"
        ],
        50,
    )
    plain_c = pct([r["check"] for r in rows if r["side"] == "plain check + apply"], 50)
    print(
        f"\nstorm ÷ plain check + apply: {storm_s / plain_s:.2f}x (target ≤ 1.1x"
        f"{f' plus the {args.watch:g}s watch' if args.watch else ''})"
    )
    print(f"Terry's dry run ÷ plain --check --diff: {check_t / plain_c:.2f}x (target < 1.15x)")
    for r in rows:
        if r.get("verified", len(staging)) != len(staging):
            print(f"{r['side']} did not verify every host: " + " | ".join(r["outcomes"]))
    ok = all(r.get("verified", len(staging)) == len(staging) for r in rows)
    ok = ok and all(r["refixes"] == 0 for r in rows if "refixes" in r)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
