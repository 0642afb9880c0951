"""Terry's overhead on apply: one remediation playbook through Terry vs plain ansible-playbook.

Setup: one ``DiskUsageHigh`` alert on web-01 goes through the whole pipeline (merged, applied,
verified). Its merged commit is exported (``git archive``) and its playbook re-applied k
times per way (default 5, ``--quick`` 1, plus one uncounted warm-up run per way unless
quick), interleaved: the order rotates every round. After the first apply the playbook
changes nothing, so the runs are comparable (the ``changed`` column shows it).

Ways, each timed as wall time around one run:

- plain: ``ansible-playbook`` as a subprocess, with the argv, cwd and env that Terry's own
  apply run used (read from that run's ansible-runner artifacts, paths re-pointed);
- bare ansible-runner: ``ansible_runner.run`` with the same arguments, no event handler;
- Terry's applier: ``AnsibleRunnerApplier().run(RunRequest(...))``;
- ``terry proposals apply ID`` (CLI): a new process that also takes the host lock, records
  the run and its events, and runs the verify play — reported separately, with its parts.

Target: Terry's applier under 1.15× plain (bare ansible-runner is about 1.12× on a small play).

    python bench/apply_overhead.py [--quick] [--repeat K]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ansible_runner
from _common import Replay, alert, export, gitops_repo, load_note, payload, table, terry
from sqlalchemy import select

from terry.app import build_pipeline
from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunRequest
from terry.config import load_config
from terry.sources.alertmanager import parse_payload
from terry.store import Store
from terry.store.models import RunRow

Way = Callable[[int], int]  # run number → changed tasks


def prepare(repo: Path) -> tuple[dict[str, Any], str]:
    """Feed one alert through the whole pipeline; the verified proposal and its state."""
    # A full disk: an alert on a disk that is fine is withdrawn before apply (nothing to time).
    terry(repo, "example", "break", "web-01", "disk")
    config = load_config(repo, environ={})
    store = Store(config.store_url)
    store.migrate()
    result = build_pipeline(config, store).ingest(
        parse_payload(payload([alert("bench-apply", "web-01")]))
    )
    store.dispose()
    outcome = result.outcomes[0]
    detail = json.loads(
        terry(repo, "proposals", "show", str(outcome.proposal_id), "-o", "json").stdout
    )
    return detail, str(outcome.state)


def ways(repo: Path, detail: dict[str, Any], scratch: Path) -> dict[str, Way]:
    config = load_config(repo, environ={})
    store = Store(config.store_url)
    with store.session() as session:  # the pipeline's own apply run: its exact invocation
        run_id = session.scalars(
            select(RunRow.id).where(RunRow.kind == "apply").order_by(RunRow.id).limit(1)
        ).one()
    tree = export(repo, detail["merge_commit"], scratch / "tree")
    replay = Replay.of_run(config.state_dir / "runs" / str(run_id), tree)
    playbook, vars_file = detail["playbook_path"], detail["vars_path"]
    hosts = tuple(detail["summary"]["hosts"])
    proposal = str(detail["summary"]["id"])

    def plain(_n: int) -> int:
        return sum(int(c) for c in re.findall(r"changed=(\d+)", replay.run_plain()))

    def bare(n: int) -> int:
        private = scratch / f"bare-{n}"
        private.mkdir()
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(tree),
            playbook=replay.playbook,
            cmdline=replay.cmdline,
            limit=replay.limit,
            forks=replay.forks,
            envvars=replay.env,
            quiet=True,
        )
        if runner.status != "successful":
            raise RuntimeError(f"ansible_runner.run ended {runner.status}")
        return sum((runner.stats or {}).get("changed", {}).values())

    def applier(n: int) -> int:
        request = RunRequest(
            project_dir=tree,
            playbook=playbook,
            private_dir=scratch / f"terry-{n}",
            inventory=tuple(config.inventory),
            hosts=hosts,
            vars_file=vars_file,
            forks=config.runner.forks,
        )
        result = AnsibleRunnerApplier().run(request)
        if not result.ok:
            raise RuntimeError(f"applier ended {result.status}: {result.failure_messages()}")
        return result.changed

    def cli(_n: int) -> int:
        terry(repo, "proposals", "apply", proposal)
        with store.session() as session:
            row = session.scalars(
                select(RunRow).where(RunRow.kind == "apply").order_by(RunRow.id.desc()).limit(1)
            ).one()
            return sum(int(s.get("changed", 0)) for s in row.stats.values())

    return {
        "plain ansible-playbook": plain,
        "bare ansible_runner.run": bare,
        "Terry AnsibleRunnerApplier": applier,
        "terry proposals apply (CLI)": cli,
    }


def cli_parts(repo: Path, calls: int) -> dict[str, float]:
    """Median ansible seconds of the CLI's own apply and verify runs (the last ``calls``)."""
    store = Store(load_config(repo, environ={}).store_url)
    with store.session() as session:
        rows = session.scalars(select(RunRow).order_by(RunRow.id.desc()).limit(2 * calls)).all()
    store.dispose()
    return {
        kind: statistics.median(r.ansible_seconds or 0.0 for r in rows if r.kind == kind)
        for kind in ("apply", "verify")
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, no warm-up")
    parser.add_argument("--repeat", type=int, help="runs per way (default 5)")
    opts = parser.parse_args()
    k = opts.repeat or (1 if opts.quick else 5)
    print(f"  at the start: {load_note()}")
    seconds: dict[str, list[float]] = {}
    changed: dict[str, set[int]] = {}
    with gitops_repo("apply") as repo, tempfile.TemporaryDirectory() as tmp:
        detail, state = prepare(repo)
        print(f"  proposal {detail['summary']['id']}: {detail['playbook_path']} → {state}")
        todo = ways(repo, detail, Path(tmp))
        if not opts.quick:  # warm caches (bytecode, page cache) once per way, not counted
            for way in todo.values():
                way(-1)
        names = list(todo)
        for r in range(k):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                started = time.perf_counter()
                n_changed = todo[name](r)
                seconds.setdefault(name, []).append(time.perf_counter() - started)
                changed.setdefault(name, set()).add(n_changed)
            print(f"  round {r + 1}/{k} done", flush=True)
        parts = cli_parts(repo, k)
        starts = []
        for _ in range(k):  # what a CLI process costs before it does anything
            started = time.perf_counter()
            terry(repo, "--help")
            starts.append(time.perf_counter() - started)

    print(f"  at the end: {load_note()}")
    plain = statistics.median(seconds["plain ansible-playbook"])
    print(f"\napply overhead: {detail['playbook_path']} on web-01, median of {k} runs each")
    rows = [
        [
            name,
            statistics.median(times),
            min(times),
            max(times),
            f"{statistics.median(times) / plain:.2f}x",
            ",".join(str(c) for c in sorted(changed[name])),
        ]
        for name, times in seconds.items()
    ]
    print(table(["way", "median s", "min s", "max s", "÷ plain", "changed"], rows))
    cli = statistics.median(seconds["terry proposals apply (CLI)"])
    rest = cli - parts["apply"] - parts["verify"]
    print(
        "\nthe CLI row includes more than the apply: median ansible seconds of its apply run "
        f"{parts['apply']:.3f}, verify run {parts['verify']:.3f}, everything else "
        f"(process start, migrate, lock, store, events) {rest:.3f}, of which "
        f"'terry --help' alone (imports) {statistics.median(starts):.3f}"
    )
    applier = statistics.median(seconds["Terry AnsibleRunnerApplier"])
    bare = statistics.median(seconds["bare ansible_runner.run"])
    print(
        f"Terry applier ÷ plain: {applier / plain:.3f}x (target < 1.15x: "
        f"{'met' if applier / plain < 1.15 else 'NOT met'}); Terry applier ÷ bare "
        f"ansible-runner: {applier / bare:.3f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
