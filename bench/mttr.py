"""Lab MTTR: fault → fired → received → decided → applied → verified, per phase, next to
the floor (one empty ansible play over SSH to the same host), in the same run.

Brings up a lab of its own (root; 3 hosts, lab-02 and lab-03 staging) with Alertmanager
pointed at a ``terry serve`` started here (server and worker in this process, as
``terry demo`` does), then, round by round, injects each fault on a staging host (disk on
lab-02, service on lab-03), waits for its proposal to end and for Prometheus to stop
firing the alert (a disk round then empties the volume, ``heal_host``, so every round
starts from the same files), and runs the floor play once. The milestones come from Terry's store
(``terry.demo.phases``: the alert's ``startsAt`` and ``received_at``, the proposal's audit
rows) and the fault's own moment from this script (when ``break_host`` returned).

Prints, per fault, p50 and p90 of every phase and of fault → verified, the recorded ansible
runs of a fix (check, apply, verify) with their seconds, and the floor measured between the
rounds. Target (issue 19): median fault → verified < 15 s, p90 < 25 s.

    sudo .venv/bin/python bench/mttr.py [--quick] [--rounds N] [--faults disk,service]

Exits 0 when it could measure (a missed target is printed), 1 when a fix did not end
verified.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from _common import load_note, pct, table

from terry import lab
from terry.app import build_pipeline
from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunRequest
from terry.config import load_config
from terry.demo.lab import point_at_lab
from terry.demo.phases import PHASES, Phases, incident_phases
from terry.gitops.init import init_repository
from terry.ports import free_port
from terry.proposals.view import list_proposals
from terry.reports.views import list_incidents
from terry.service.server import create_app
from terry.service.worker import Worker
from terry.store import Store

LAB = lab.LabConfig(
    state_dir=Path("/var/lib/terry-lab-mttr"),
    bridge="terrylabm0",
    subnet="10.84.0.0/24",
    netns_prefix="terrymttr-",
    veth_prefix="tlabm",
)
FAULTS = {"disk": ("lab-02", "DiskUsageHigh"), "service": ("lab-03", "ServiceDown")}
TERMINAL = {"verified", "rolled_back", "failed", "denied", "rejected", "escalated", "interrupted"}
FLOOR_PLAY = [
    {
        "name": "floor: one module over SSH",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [{"name": "ping", "ansible.builtin.ping": {}}],
    }
]


class _Quiet:
    def step(self, proposal_id: int | None, message: str) -> None:
        return None

    def event(self, proposal_id: int, kind: str, event: object) -> None:
        return None


def _wait(what: str, probe: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def _firing(url: str, alertname: str, host: str) -> bool:
    try:
        alerts = httpx.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    except (httpx.HTTPError, ValueError, KeyError):
        return True
    return any(
        a["labels"].get("alertname") == alertname
        and a["labels"].get("host") == host
        and a.get("state") in ("firing", "pending")
        for a in alerts
    )


def _floor(repo: Path, scratch: Path, host: str, n: int, env: dict[str, str]) -> float:
    """One empty play (a ping) over SSH through Terry's own runner: one ansible start."""
    play = scratch / "floor.yml"
    play.write_text(yaml.safe_dump(FLOOR_PLAY, sort_keys=False), encoding="utf-8")
    request = RunRequest(
        project_dir=repo,
        playbook=str(play),
        private_dir=scratch / f"floor-{n}",
        inventory=("inventories/lab",),
        hosts=(host,),
        env=env,
    )
    started = time.monotonic()
    result = AnsibleRunnerApplier().run(request)
    elapsed = time.monotonic() - started
    if not result.ok:
        raise RuntimeError(f"floor play failed on {host}: {result.failure_messages()[:3]}")
    return elapsed


def _round(state: lab.LabState, store: Store, kind: str, seen: set[int]) -> Phases:
    """One fault on its staging host, until its fix ends: the incident's phases."""
    host, alertname = FAULTS[kind]
    _wait(
        f"{alertname} on {host} to stop firing",
        lambda: not _firing(state.prometheus_url, alertname, host),
        180,
    )
    lab.break_host(state, host, kind)
    fault = datetime.now(UTC)

    def opened() -> int | None:
        for i in list_incidents(store, limit=50):
            if i.id not in seen and i.title == alertname and i.host == host:
                return i.id
        return None

    incident = _wait(f"the {alertname} incident", opened, 120)
    assert isinstance(incident, int)
    seen.add(incident)

    def ended() -> bool:
        mine = [p for p in list_proposals(store, limit=50) if p.incident_id == incident]
        return bool(mine) and all(p.state in TERMINAL for p in mine)

    _wait(f"the fix of incident {incident}", ended, 240)
    if kind == "disk":  # every round starts from the same disk: no .gz of the last round
        lab.heal_host(state, host, kind)
    return incident_phases(store, incident, fault=fault)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="faults of each kind (5)")
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    parser.add_argument("--faults", default="disk,service", help="disk,service")
    parser.add_argument(
        "--strategy",
        default="linear",
        choices=("linear", "mitogen_linear"),
        help="runner.strategy for Terry's runs and the floor (linear)",
    )
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    kinds = [k.strip() for k in args.faults.split(",") if k.strip()]
    print(
        f"bench/mttr.py: {rounds} round(s) of {', '.join(kinds)}, strategy {args.strategy}; "
        f"{load_note()}"
    )

    scratch = Path(tempfile.mkdtemp(prefix="terry-bench-mttr-"))
    repo = init_repository(scratch / "ops", example=False).path
    token = secrets.token_urlsafe(24)
    port = free_port()
    began = time.monotonic()
    state = lab.up(
        LAB,
        hosts=3,
        repo=repo,
        webhook_url=f"http://127.0.0.1:{port}/api/v1/alerts",
        webhook_token=token,
    )
    print(f"lab up in {time.monotonic() - began:.0f}s")
    server = None
    thread = None
    store = None
    results: dict[str, list[Phases]] = {k: [] for k in kinds}
    floors: list[float] = []
    failed = 0
    try:
        point_at_lab(repo, state)  # the demo's own setup
        config = load_config(repo, environ={"TERRY_RUNNER_STRATEGY": args.strategy})
        store = Store(config.store_url)
        store.migrate()
        worker = Worker(  # as terry serve makes it (storm.gather: its wait is in the MTTR)
            lambda: build_pipeline(config, store, reporter=_Quiet()),
            store,
            poll_seconds=1.0,
            gather=config.storm.gather,
            gather_max=config.storm.gather_max,
        )
        app = create_app(config, store, worker=worker, token=token)
        import uvicorn

        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, name="terry-serve", daemon=True)
        thread.start()
        _wait("terry serve", lambda: server.started, 30)
        # Warm-up: one floor run per host (the first SSH connection of a lab costs more).
        for host, _alert in FAULTS.values():
            _floor(repo, scratch, host, 0, config.runner.ansible_env())
        seen: set[int] = set()
        for n in range(1, rounds + 1):
            for kind in kinds:
                phases = _round(state, store, kind, seen)
                results[kind].append(phases)
                failed += phases.state != "verified"
                print(
                    f"round {n} {kind:7} incident {phases.incident_id}: {phases.state}; "
                    f"{phases.line()}; runs " + ", ".join(f"{k} {s:.1f}s" for k, s in phases.runs)
                )
                floors.append(
                    _floor(
                        repo, scratch, FAULTS[kind][0], len(floors) + 1, config.runner.ansible_env()
                    )
                )
    finally:
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(60)
        if store is not None:
            store.dispose()
        lab.down(LAB)
        shutil.rmtree(scratch, ignore_errors=True)

    floor = (pct(floors, 50), pct(floors, 90))
    print()
    print(
        f"floor (one empty play over SSH, Terry's runner): p50 {floor[0]:.2f}s, p90 {floor[1]:.2f}s"
    )
    for kind, found in results.items():
        rows: list[list[object]] = []
        for name in PHASES:
            values = [v for p in found if (v := p.seconds()[name]) is not None]
            if values:
                rows.append([name, len(values), pct(values, 50), pct(values, 90)])
        totals = [t for p in found if (t := p.to_verified()) is not None]
        rows.append(["fault → verified", len(totals), pct(totals, 50), pct(totals, 90)])
        runs: dict[str, list[float]] = {}
        for p in found:
            for k, s in p.runs:
                runs.setdefault(k, []).append(s)
        for k, values in runs.items():
            rows.append([f"  ansible run: {k}", len(values), pct(values, 50), pct(values, 90)])
        rows.append(["  floor (empty play)", len(floors), floor[0], floor[1]])
        print()
        print(f"{kind} ({FAULTS[kind][1]} on {FAULTS[kind][0]}), seconds:")
        print(table(["phase", "n", "p50", "p90"], rows))
        met = totals and pct(totals, 50) < 15 and pct(totals, 90) < 25
        print(f"target fault → verified p50 < 15 s, p90 < 25 s: {'met' if met else 'NOT met'}")
    print()
    print(f"{load_note()}; figures from a loaded machine are indicative")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
