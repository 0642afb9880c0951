"""The demo's loop against the real lab, with assertions on live state.

Faults on real SSH hosts → Prometheus fires → Alertmanager posts to Terry's webhook →
proposals, dry runs, the gate → apply over SSH → verify against Prometheus → resolved.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml
from sqlalchemy import select

from terry import lab
from terry.config import load_config
from terry.demo.lab import run_lab_demo
from terry.notify.deliver import deliver_round
from terry.store import Store
from terry.store.models import AuditRow, ProposalRow, RunEventRow, RunRow
from tests.fakes.chat_receivers import ChatReceivers

NEEDS = ["prometheus", "prometheus-alertmanager", "prometheus-node-exporter"]

LAB = lab.LabConfig(
    state_dir=Path("/var/lib/terry-lab-e2e"),
    bridge="terrylabe0",
    subnet="10.79.0.0/24",
    netns_prefix="terrye2e-",
    veth_prefix="tlabe",
)


class _Collect:
    def __init__(self) -> None:
        self.steps: list[str] = []

    def step(self, proposal_id: int | None, message: str) -> None:
        self.steps.append(message)

    def event(self, proposal_id: int, kind: str, event: object) -> None:
        return None


def _review_request_reaches_chat(repo: Path, proposal_id: int) -> None:
    path = repo / "terry.yml"
    settings = yaml.safe_load(path.read_text())
    settings["notifications"] = {
        "routes": [
            {
                "name": "oncall",
                "url_env": "LAB_CHAT_URL",
                "format": "slack",
                "events": ["needs-review"],
                "environments": ["production"],
            }
        ],
        "group_window": 0,
    }
    path.write_text(yaml.safe_dump(settings))
    chat = ChatReceivers()
    chat.start()
    config = load_config(repo, environ={})
    store = Store(config.store_url)
    try:
        done = deliver_round(config, store, environ={"LAB_CHAT_URL": chat.slack_url})
        assert done.messages == 1 and not done.errors, done
        [text] = chat.texts("slack")
        assert "needs review" in text.splitlines()[0] and "lab-01 (production)" in text
        assert f"terry proposals approve {proposal_id}" in text
    finally:
        store.dispose()
        chat.stop()


def test_alert_to_verified_fix_on_the_lab(tmp_path: Path) -> None:
    narration: list[str] = []
    reporter = _Collect()
    try:
        result = run_lab_demo(
            tmp_path / "ops",
            reporter=reporter,
            narrate=narration.append,
            keep=True,
            lab_config=LAB,
            timeout=180,
        )
        state = result.state
        rows = {r.host: r for r in result.rows}
        assert set(rows) == {"lab-01", "lab-02"}
        assert rows["lab-02"].decision == "merge"  # staging, low risk
        assert rows["lab-01"].decision == "review"  # production waits
        assert rows["lab-01"].approved_by == "demo-operator"
        for row in rows.values():
            assert row.state == "verified" and row.resolved, row
            assert row.seconds_to_fix is not None

        # live state, read over SSH: the disk is below the threshold again
        df = lab.host_exec(state.host("lab-02"), ["df", "--output=pcent", "/srv/data"])
        assert int(df.stdout.splitlines()[-1].strip().rstrip("%")) < 80
        # the production service answers on its own address
        address = state.host("lab-01").address
        assert httpx.get(f"http://{address}:8080/healthz", timeout=5).status_code == 200
        # Prometheus: none of the demo's alerts is firing any more
        assert not [
            a for a in result.firing_after if a in ("DiskUsageHigh/lab-02", "ServiceDown/lab-01")
        ]

        # the store holds the whole audited history
        store = Store(load_config(result.repo, environ={}).store_url)
        with store.session() as session:
            proposals = list(session.scalars(select(ProposalRow)))
            kinds = {(r.proposal_id, r.kind) for r in session.scalars(select(RunRow))}
            events = session.scalar(select(RunEventRow.id).limit(1))
            audits = [
                (a.entity_id, a.to_state, a.actor)
                for a in session.scalars(select(AuditRow).where(AuditRow.entity == "proposal"))
            ]
        store.dispose()
        for p in proposals:
            if p.incident_id in {r.incident_id for r in rows.values()}:
                assert {(p.id, k) for k in ("check", "apply", "verify")} <= kinds
                assert "verified" in [t for i, t, _a in audits if i == p.id]
                # verified by the remedy's own checks and by Prometheus' view of the host
                query = "node_filesystem_avail_bytes" if p.remedy == "disk-usage-high" else "up{"
                assert query in (p.outcome or ""), p.outcome
        assert events is not None
        assert any(a == "demo-operator" and t == "approved" for _i, t, a in audits)
        assert any("verify" in s for s in reporter.steps)

        # The production review request reaches the team's chat with the approve command:
        # the notifier reads the audit log the demo wrote, as terry serve's thread would.
        [reviewed] = [
            p.id
            for p in proposals
            if p.incident_id == rows["lab-01"].incident_id and p.approved_by == "demo-operator"
        ]
        _review_request_reaches_chat(result.repo, reviewed)
    finally:
        report = lab.down(LAB)
        assert not report.problems, report.problems
