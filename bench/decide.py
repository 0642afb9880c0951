"""alert received → proposal decided: Terry's own time next to ansible's, per alert.

Feeds N single-alert Alertmanager payloads (default 200, ``--quick`` 6; ``DiskUsageHigh``,
distinct fingerprints, spread over web-01, web-02 and db-01) through ``Pipeline.ingest(
payload, apply=False)``: store the alert, open the incident, diagnose, render and commit
the playbook on a branch, dry-run it (``ansible-playbook --check --diff`` through
ansible-runner), ask the Rego gate, merge when the gate says merge. Each alert ends
``merged`` (staging) or ``awaiting_review`` (db-01, production).

Per alert: total wall time, the time inside ansible-runner (``runs.ansible_seconds``) and
Terry's own part (total − ansible), plus a breakdown of Terry's part by step (measured by
wrapping the pipeline's steps, the applier and the policy engine; Terry is not modified).

Target: Terry's own part under 0.5 s at p99; ansible is the floor. Baseline, measured in
the same run, interleaved with the alerts: the first proposal's rendered playbook run by
hand (``ansible-playbook --check --diff`` on a ``git archive`` export of its commit, with
the argv and env of Terry's own dry run: same inventory, vars file, roles path), and the
same command on an empty play (what starting ansible-playbook costs).

    python bench/decide.py [--quick] [--alerts N] [--baseline-runs R]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import HOSTS, Replay, alert, export, gitops_repo, load_note, payload, pct, table, terry
from sqlalchemy import select

from terry.app import build_pipeline
from terry.appliers.ansible import AnsibleApplier
from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunRequest
from terry.appliers.base import RunnerEvent, RunResult
from terry.config import Config, load_config
from terry.gate.engine import Decision, PolicySet, RegorusEngine
from terry.pipeline import Pipeline
from terry.proposals.state import ProposalState
from terry.sources.alertmanager import parse_payload
from terry.store import Store
from terry.store.models import RunRow

EMPTY_PLAY = "- hosts: web-01\n  gather_facts: false\n  tasks: []\n"


class Clock:
    """Seconds spent per named step, reset for every alert."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.spent[name] += time.perf_counter() - started


class TimedApplier(AnsibleRunnerApplier):
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def run(
        self, request: RunRequest, on_event: Callable[[RunnerEvent], None] | None = None
    ) -> RunResult:
        with self.clock("ansible"):
            return super().run(request, on_event)


class TimedEngine:
    def __init__(self, clock: Clock) -> None:
        self.clock, self.inner = clock, RegorusEngine()

    def decide(self, policies: PolicySet, gate_input: dict[str, Any]) -> Decision:
        with self.clock("policy"):
            return self.inner.decide(policies, gate_input)


class Timed:
    """A step (or the review it merges through) with its calls timed under ``name``."""

    def __init__(self, clock: Clock, name: str, inner: Any, *, method: str = "__call__") -> None:
        self.clock, self.name, self.inner, self.method = clock, name, inner, method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.clock(self.name):
            return self.inner(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        found = getattr(self.inner, attr)
        if attr != self.method:
            return found

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.clock(self.name):
                return found(*args, **kwargs)

        return timed


def timed_pipeline(config: Config, store: Store, clock: Clock) -> Pipeline:
    """Terry's own pipeline, its steps timed from outside (Terry is not modified)."""
    pipeline = build_pipeline(
        config,
        store,
        engine=TimedEngine(clock),
        appliers={"ansible": lambda ctx, share: AnsibleApplier(ctx, TimedApplier(clock))},
    )
    steps = pipeline.steps
    review = Timed(clock, "merge", pipeline.review, method="merge")
    pipeline.steps = dataclasses.replace(
        steps,
        diagnose=Timed(clock, "diagnose", steps.diagnose),
        propose=Timed(clock, "propose", steps.propose),
        dry_run=Timed(clock, "check", steps.dry_run),
        gate=Timed(clock, "gate", dataclasses.replace(steps.gate, review=review)),
    )
    return pipeline


def phases(total: float, s: dict[str, float]) -> dict[str, float]:
    """Terry's part split by step (seconds); the steps nest, so subtract the inner ones."""
    return {
        "store alert + open incident, claim": total
        - s["diagnose"]
        - s["propose"]
        - s["check"]
        - s["gate"],
        "export main, diagnose": s["diagnose"],
        "render + commit branch": s["propose"],
        "dry run: Terry around ansible": s["check"] - s["ansible"],
        "gate: input, history, policies": s["gate"] - s["policy"] - s["merge"],
        "gate: regorus child process": s["policy"],
        "merge into main": s["merge"],
    }


def baseline(replay: Replay) -> tuple[float, float]:
    """(Terry's dry run of the first proposal by hand, the same on an empty play), seconds."""
    timings = []
    for argv in (replay.argv, [*replay.argv[:-1], "empty.yml"]):
        started = time.perf_counter()
        dataclasses.replace(replay, argv=argv).run_plain()
        timings.append(time.perf_counter() - started)
    return timings[0], timings[1]


def disk_usage(path: Path) -> tuple[int, float]:
    """(entries directly under path, MB of all files below it)."""
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return sum(1 for _ in path.iterdir()), size / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 alerts, 1 baseline run")
    parser.add_argument("--alerts", type=int, help="alerts to feed (default 200)")
    parser.add_argument("--baseline-runs", type=int, help="by-hand runs (default 3)")
    opts = parser.parse_args()
    n = opts.alerts or (6 if opts.quick else 200)
    runs = opts.baseline_runs or (1 if opts.quick else 3)
    print(f"  at the start: {load_note()}")
    at = {round(j * (n - 1) / max(1, runs - 1)) for j in range(runs)} if runs > 1 else {0}

    totals, ansible, own, states = [], [], [], Counter[str]()
    steps: dict[str, list[float]] = defaultdict(list)
    plain, empty = [], []
    with gitops_repo("decide") as repo, tempfile.TemporaryDirectory() as scratch:
        config = load_config(repo, environ={})
        store = Store(config.store_url)
        store.migrate()
        clock = Clock()
        pipeline = timed_pipeline(config, store, clock)
        pipeline.ctx.main.view()  # what terry serve's worker does when it starts
        replay: Replay | None = None
        for i in range(n):
            body = payload([alert(f"bench-decide-{i:05d}", HOSTS[i % len(HOSTS)])])
            parsed = parse_payload(body)
            clock.spent.clear()
            started = time.perf_counter()
            result = pipeline.ingest(parsed, apply=False)
            total = time.perf_counter() - started
            outcome = result.outcomes[0]
            states[outcome.state or f"none: {outcome.note}"] += 1
            with store.session() as session:
                seconds = session.scalars(
                    select(RunRow.ansible_seconds).where(RunRow.proposal_id == outcome.proposal_id)
                ).all()
            spent = sum(s or 0.0 for s in seconds)
            totals.append(total)
            ansible.append(spent)
            own.append(total - spent)
            for name, value in phases(total, clock.spent).items():
                steps[name].append(value)
            if replay is None:  # the first proposal, exported by hand from its commit
                shown = terry(repo, "proposals", "show", str(outcome.proposal_id), "-o", "json")
                tree = export(repo, json.loads(shown.stdout)["commit"], Path(scratch))
                (tree / "empty.yml").write_text(EMPTY_PLAY, encoding="utf-8")
                with store.session() as session:
                    run_id = session.scalars(
                        select(RunRow.id).where(RunRow.proposal_id == outcome.proposal_id)
                    ).one()
                replay = Replay.of_run(config.state_dir / "runs" / str(run_id), tree)
            if i in at:
                p, e = baseline(replay)
                plain.append(p)
                empty.append(e)
            print(f"  alert {i + 1}/{n}: {outcome.state} in {total:.2f} s", flush=True)
        store.dispose()
        left = {d: disk_usage(config.state_dir / d) for d in ("trees", "runs")}

    print(f"  at the end: {load_note()}")
    print(f"\ndecide: {n} alerts → proposal decided (apply=False), seconds per alert")
    rows: list[list[object]] = [
        ["total: alert → decided", pct(totals, 50), pct(totals, 99), max(totals)],
        ["ansible (runs.ansible_seconds)", pct(ansible, 50), pct(ansible, 99), max(ansible)],
        ["Terry's own (total − ansible)", pct(own, 50), pct(own, 99), max(own)],
    ]
    print(table(["per alert", "p50", "p99", "max"], rows))
    print(f"\nbaseline in the same run ({len(plain)} by-hand runs, interleaved), seconds")
    med_plain = statistics.median(plain)
    rows = [
        ["plain ansible-playbook --check --diff", med_plain, min(plain), max(plain)],
        ["ansible-playbook, empty play (floor)", statistics.median(empty), min(empty), max(empty)],
    ]
    print(table(["by hand", "median", "min", "max"], rows))
    print("\nTerry's own part by step, milliseconds per alert")
    rows = [[k, 1000 * pct(v, 50), 1000 * pct(v, 99)] for k, v in steps.items()]
    print(table(["step", "p50", "p99"], rows))
    tenth = max(1, n // 10)
    print(
        f"\ndecided: {dict(states)}\n"
        f"left in .terry/ after {n} alerts: "
        + ", ".join(f"{d}/ {c} entries, {mb:.1f} MB" for d, (c, mb) in left.items())
        + "\n"
        f"total p50 / plain check: {pct(totals, 50) / med_plain:.2f}x\n"
        f"Terry's own p50, first {tenth} vs last {tenth} alerts: "
        f"{statistics.median(own[:tenth]):.3f} s vs {statistics.median(own[-tenth:]):.3f} s\n"
        f"target: Terry's own p99 < 0.5 s: {pct(own, 99):.3f} s "
        f"({'met' if pct(own, 99) < 0.5 else 'NOT met'})"
    )
    ok = set(states) <= {ProposalState.MERGED.value, ProposalState.AWAITING_REVIEW.value}
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
