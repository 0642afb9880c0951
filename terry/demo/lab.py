"""``terry demo`` on the lab: real SSH hosts, real Prometheus and Alertmanager, real webhook.

The lab comes up with Alertmanager pointed at a Terry server started here; faults are
injected; from then on nothing is fed by hand: Prometheus fires, Alertmanager posts,
Terry's worker diagnoses, dry-runs, gates, merges, applies over SSH and verifies against
Prometheus; the demo only approves the production fix as a named user, as a person would,
and waits for the alerts to resolve.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn
import yaml

from terry import lab
from terry.app import build_pipeline
from terry.config import CONFIG_FILE, load_config
from terry.context import Reporter
from terry.demo.local import APPROVER, DemoRow
from terry.demo.narration import GroupedReporter
from terry.demo.phases import incident_phases
from terry.errors import StateError
from terry.gitops.init import init_repository
from terry.gitops.repo import Repo
from terry.ports import free_port
from terry.proposals.state import ENDED
from terry.proposals.view import list_proposals
from terry.reports.views import IncidentSummary, list_incidents
from terry.service.server import create_app
from terry.service.worker import Worker
from terry.store import Store

__all__ = ["LabDemo", "point_at_lab", "run_lab_demo"]

FAULTS = (("lab-02", "disk", "DiskUsageHigh"), ("lab-01", "service", "ServiceDown"))


@dataclass(frozen=True)
class LabDemo:
    repo: Path
    rows: list[DemoRow]
    prometheus_url: str
    firing_after: list[str]
    state: lab.LabState


def _wait(what: str, predicate: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise StateError(f"demo: timed out after {timeout:.0f}s waiting for {what}")


def point_at_lab(repo: Path, state: lab.LabState) -> None:
    """Point terry.yml at the lab inventory and Prometheus, and commit that on main."""
    path = repo / CONFIG_FILE
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    config["inventory"] = ["inventories/lab"]
    config["prometheus"] = {"url": state.prometheus_url, "settle_seconds": 30, "timeout": 5}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    Repo(repo).commit_paths(
        [CONFIG_FILE, "inventories/lab"],
        "lab: inventory of the lab hosts; verify against its Prometheus",
    )


def firing(prometheus_url: str) -> list[str]:
    """``alertname/host`` of every alert Prometheus has firing now."""
    answer = httpx.get(f"{prometheus_url}/api/v1/alerts", timeout=5).json()
    return sorted(
        f"{a['labels'].get('alertname')}/{a['labels'].get('host')}"
        for a in answer["data"]["alerts"]
        if a.get("state") == "firing"
    )


def run_lab_demo(
    workdir: Path,
    *,
    reporter: Reporter,
    narrate: Callable[[str], None],
    keep: bool = False,
    lab_config: lab.LabConfig | None = None,
    timeout: float = 240.0,
) -> LabDemo:
    # Two proposals run at once in the worker's threads: one proposal's lines at a time.
    grouped = GroupedReporter(reporter)
    narrate(f"1. A GitOps repository: terry init {workdir}")
    repo = init_repository(workdir, example=False).path
    token = secrets.token_urlsafe(24)
    port = free_port()
    narrate(
        "2. The lab: 3 SSH hosts in network namespaces (lab-01 production, lab-02/03 "
        "staging), node_exporter, Prometheus and Alertmanager → Terry's webhook"
    )
    state = lab.up(
        lab_config,
        hosts=3,
        repo=repo,
        webhook_url=f"http://127.0.0.1:{port}/api/v1/alerts",
        webhook_token=token,
    )
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    store: Store | None = None
    try:
        point_at_lab(repo, state)
        config = load_config(repo, environ={})
        store = Store(config.store_url)
        store.migrate()
        worker = Worker(
            lambda: build_pipeline(config, store, reporter=grouped),
            store,
            poll_seconds=1.0,
            gather=config.storm.gather,
            gather_max=config.storm.gather_max,
        )
        app = create_app(config, store, worker=worker, token=token)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, name="terry-serve", daemon=True)
        thread.start()
        _wait("terry serve", lambda: server.started, 30)
        narrate(
            f"   terry serve listening on 127.0.0.1:{port}; Prometheus at {state.prometheus_url}"
        )

        narrate("3. Faults: lab-02's data volume fills up; lab-01's web service stops")
        faulted: dict[str, datetime] = {}
        for host, fault, alertname in FAULTS:
            narrate(f"   {lab.break_host(state, host, fault).detail}")
            faulted[alertname] = datetime.now(UTC)

        found: dict[str, IncidentSummary] = {}

        def incidents_opened() -> bool:
            for incident in list_incidents(store, limit=100):
                for host, _fault, alertname in FAULTS:
                    if (
                        incident.title == alertname
                        and incident.host == host
                        and alertname not in found
                    ):
                        found[alertname] = incident
                        narrate(f"4. Alert fired → incident {incident.id}: {alertname} on {host}")
            return len(found) == len(FAULTS)

        _wait("the alerts to fire and reach Terry", incidents_opened, timeout)

        def production_waiting() -> int | None:
            for p in list_proposals(store, state="awaiting_review"):
                if p.incident_id == found["ServiceDown"].id:
                    return p.id
            return None

        waiting = _wait("the production proposal to wait for review", production_waiting, timeout)
        assert isinstance(waiting, int)
        narrate(f"5. Production waits for review; {APPROVER} approves proposal {waiting}")
        build_pipeline(config, store, reporter=grouped).approve(waiting, actor=APPROVER)

        ids = {found[name].id for _h, _f, name in FAULTS}

        def settled() -> bool:
            states = [p.state for p in list_proposals(store, limit=100) if p.incident_id in ids]
            return len(states) >= len(ids) and all(s in ENDED for s in states)

        _wait("every proposal to settle", settled, timeout)
        grouped.flush()

        def resolved() -> bool:
            mine = [i for i in list_incidents(store, limit=100) if i.id in ids]
            return all(i.state == "resolved" for i in mine)

        narrate(
            "6. Waiting for Prometheus to see the hosts healthy and Alertmanager to "
            "send the resolved notices"
        )
        _wait("the alerts to resolve", resolved, timeout)
        narrate("7. Where the time went (fault → fired → received → decided → applied → verified):")
        for name, incident in sorted(found.items(), key=lambda item: item[1].id):
            phases = incident_phases(store, incident.id, fault=faulted.get(name))
            narrate(f"   {name} on {incident.host}: {phases.line()}")
        still = firing(state.prometheus_url)
        rows = []
        by_incident = {p.incident_id: p for p in list_proposals(store, limit=100)}
        environments = {h: ("production" if h == "lab-01" else "staging") for h, _f, _a in FAULTS}
        for incident in list_incidents(store, limit=100):
            if incident.id not in ids:
                continue
            proposal = by_incident.get(incident.id)
            rows.append(
                DemoRow(
                    incident_id=incident.id,
                    alert=incident.title,
                    host=incident.host or "?",
                    environment=environments.get(incident.host or "", "?"),
                    decision=proposal.decision if proposal else None,
                    approved_by=APPROVER if proposal and proposal.id == waiting else None,
                    state=proposal.state if proposal else None,
                    seconds_to_fix=incident.seconds_to_fix,
                    resolved=incident.state == "resolved",
                )
            )
        return LabDemo(
            repo, sorted(rows, key=lambda r: r.incident_id), state.prometheus_url, still, state
        )
    finally:
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(60)
        grouped.flush()
        if store is not None:
            store.dispose()
        if not keep:
            lab.down(lab_config)
