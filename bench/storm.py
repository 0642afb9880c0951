"""Storm: N hosts' disks fill at once — one folded proposal vs. one proposal per incident,
in the same run.

Builds a GitOps repository of its own (``terry init``) whose inventory is N local hosts
(Ansible's local connection, each its own scratch root with a 4 MiB quota, all staging; no
root needed), fills every host's /srv/data with logs (``terry.demo.example.break_host``),
then feeds one Alertmanager group with a DiskUsageHigh alert per host to the pipeline in
this process:

- **storm**: today's path — the incidents fold into one proposal over every host (one
  dry run, one decision, an apply in canary waves; ``canary.watch`` set to ``--watch``);
- **one each**: the path before storm folding — every incident diagnosed and carried on
  its own (``storm.window`` 0, ``Pipeline.remediate`` per incident), one after the other.

The two sides alternate over ``--rounds`` (one each by default), each starting from full
disks. Prints per side: seconds from the alerts to the last host verified, proposals,
ansible runs, the per-host wait (alert → that host verified; p50 and max) and the ratio
one-each ÷ storm. ``policies/data.json`` in the throw-away repository lets up to N hosts
merge without review, so neither side waits for a person.

    .venv/bin/python bench/storm.py [--hosts 10] [--rounds 1] [--watch 0]

Exits 0 when every host ended verified on both sides, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from _common import alert, load_note, payload, pct, table
from sqlalchemy import func, select

from terry.app import build_pipeline
from terry.config import Config, load_config
from terry.demo import example
from terry.gitops.init import init_repository
from terry.sources.alertmanager import parse_payload
from terry.store import Store
from terry.store.models import ProposalHostRow, ProposalRow, RunRow


class _Quiet:
    """Says nothing; keeps each step with its second since ``clock`` (the timeline)."""

    def __init__(self) -> None:
        self.clock = time.monotonic()
        self.steps: list[tuple[float, str]] = []

    def step(self, proposal_id: int | None, message: str) -> None:
        self.steps.append((time.monotonic() - self.clock, message[:160]))

    def event(self, proposal_id: int, kind: str, event: object) -> None:
        return None


def _repo(scratch: Path, hosts: list[str], watch: float) -> Path:
    repo = init_repository(scratch / "ops").path
    inventory_path = repo / "inventories" / "example" / "hosts.yml"
    inventory = yaml.safe_load(inventory_path.read_text())
    inventory["all"]["children"] = {
        "staging": {
            "vars": {"terry_environment": "staging"},
            "hosts": {
                h: {"terry_root": str(repo / ".terry" / "hosts" / h), "terry_disk_quota_mb": 4}
                for h in hosts
            },
        }
    }
    inventory_path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    data_path = repo / "policies" / "data.json"
    data = json.loads(data_path.read_text())
    data["terry"]["settings"]["max_auto_hosts"] = len(hosts)
    data_path.write_text(json.dumps(data, indent=2) + "\n")
    config = yaml.safe_load((repo / "terry.yml").read_text())
    config["canary"] = {"watch": watch}
    (repo / "terry.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.org",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.org",
        "PATH": "/usr/bin:/bin",
        "HOME": str(scratch),
    }
    subprocess.run(
        ["git", "-C", str(repo), "commit", "-qam", "bench: the storm fleet"], check=True, env=env
    )
    for h in hosts:
        (repo / ".terry" / "hosts" / h / "srv" / "data").mkdir(parents=True, exist_ok=True)
    return repo


def _fill_example(config: Config, hosts: list[str]) -> None:
    for h in hosts:
        example.break_host(config, h, example.Fault.DISK)


def _side(
    repo: Path,
    hosts: list[str],
    name: str,
    tag: str,
    fill: Callable[[Config, list[str]], None] = _fill_example,
    body: str | None = None,
) -> dict[str, Any]:
    """One side's round: fill every disk (``fill``), send the alerts (``body``, else one
    DiskUsageHigh per host), carry them; its figures and its runs (id, kind, seconds)."""
    overrides: dict[str, object] = {"storm": {"window": 0}} if name == "one each" else {}
    config = load_config(repo, environ={}, overrides=overrides)
    fill(config, hosts)
    store = Store(config.store_url)
    store.migrate()
    with store.session() as session:
        first_proposal = int(session.scalar(select(func.max(ProposalRow.id))) or 0)
        first_run = int(session.scalar(select(func.max(RunRow.id))) or 0)
    quiet = _Quiet()
    pipeline = build_pipeline(config, store, reporter=quiet)
    body = body or payload([alert(f"{tag}-{h}", h) for h in hosts])
    started = datetime.now(UTC)
    own = resource.getrusage(resource.RUSAGE_SELF)
    clock = quiet.clock = time.monotonic()
    if name == "storm":
        pipeline.ingest(parse_payload(body))
    else:
        result = pipeline.ingest(parse_payload(body), remediate=False)
        for incident_id in result.ingest.opened:
            pipeline.remediate(incident_id)
    seconds = time.monotonic() - clock
    after = resource.getrusage(resource.RUSAGE_SELF)
    own_cpu = (after.ru_utime - own.ru_utime) + (after.ru_stime - own.ru_stime)
    with store.session() as session:
        proposals = list(
            session.scalars(select(ProposalRow).where(ProposalRow.id > first_proposal))
        )
        runs = list(session.scalars(select(RunRow).where(RunRow.id > first_run)))
        ended = list(
            session.execute(
                select(
                    ProposalHostRow.host, ProposalHostRow.state, ProposalHostRow.updated_at
                ).where(ProposalHostRow.proposal_id > first_proposal)
            )
        )
    store.dispose()
    verified = {h: at for h, state, at in ended if state == "verified"}
    waits = [(at - started).total_seconds() for at in verified.values()]
    hosts_proposed = [h for p in proposals for h in p.hosts]
    return {
        "side": name,
        "seconds": seconds,
        "own_cpu": own_cpu,  # Terry's own process (its threads), not the ansible it starts
        "proposals": len(proposals),
        "runs": len(runs),
        "refixes": len(hosts_proposed) - len(set(hosts_proposed)),
        "outcomes": [f"proposal {p.id} {p.state}: {(p.outcome or '')[:600]}" for p in proposals],
        "timeline": sorted(
            quiet.steps
            + [
                ((at - started).total_seconds(), f"run {r.id} {r.kind} {edge}")
                for r in runs
                for at, edge in ((r.started_at, "starts"), (r.finished_at, "ends"))
                if at is not None
            ]
        ),
        "run_rows": [
            (r.id, r.kind, (r.finished_at - r.started_at).total_seconds(), r.status)
            for r in runs
            if r.finished_at is not None
        ],
        "verified": len(verified),
        "wait_p50": pct(waits, 50),
        "wait_max": max(waits) if waits else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--watch", type=float, default=0.0, help="canary.watch, seconds")
    args = parser.parse_args()
    hosts = [f"s-{n:02d}" for n in range(1, args.hosts + 1)]
    scratch = Path(tempfile.mkdtemp(prefix="terry-bench-storm-"))
    rows: list[dict[str, Any]] = []
    try:
        repo = _repo(scratch, hosts, args.watch)
        for n in range(args.rounds):
            order = ("storm", "one each") if n % 2 == 0 else ("one each", "storm")
            for name in order:
                rows.append(_side(repo, hosts, name, f"r{n}-{name.replace(' ', '')}"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"storm over {len(hosts)} local hosts, {args.rounds} round(s); {load_note()}")
    keys = ("seconds", "proposals", "runs", "verified", "wait_p50", "wait_max")
    print(table(("side", *keys), [(r["side"], *(r[k] for k in keys)) for r in rows]))
    storm = sorted(r["seconds"] for r in rows if r["side"] == "storm")
    each = sorted(r["seconds"] for r in rows if r["side"] == "one each")
    ratio = pct(each, 50) / pct(storm, 50)
    print(f"\none proposal per incident ÷ storm folding (median seconds): {ratio:.2f}x")
    print("target (issue 18): one proposal for the storm, every host verified")
    ok = all(r["verified"] == len(hosts) for r in rows)
    ok = ok and all(r["proposals"] == 1 for r in rows if r["side"] == "storm")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
