"""``terry incidents retry``: an alert's incident whose proposal ended unfixed is diagnosed
and proposed again, locally and through a real ``terry serve`` (its worker carries it).

Real example hosts (ansible-playbook on local scratch roots), real git and regorus, the
store on SQLite or PostgreSQL. db-01's service is down; its fix waits for review
(production). Rejected, the incident stays open while the alert fires, and its repeats
change nothing; a retry makes a new proposal through the dry run and the gate. Refused with
the reason: a proposal still under way, a resolved incident, a drift incident, no such
incident; remotely, a viewer's token, and another name without an admin's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from terry.demo import example
from terry.gitops.init import init_repository
from terry.incidents.lifecycle import mark_diagnosed, open_incident
from terry.store import Store
from tests.conftest import Cli, alert, config_for, make_cli, payload
from tests.integration.test_server import Serve

pytestmark = pytest.mark.integration

FIRING = payload([alert("ServiceDown", fingerprint="retry-svc", host="db-01", service="web")])


@dataclass
class Site:
    repo: Path
    local: Cli

    def remote(self, server: Serve, token: str) -> Cli:
        env = {**self.local.env, "TERRY_SERVER": server.url, "TERRY_TOKEN": token}
        env.pop("TERRY_DATABASE_URL", None)
        return replace(self.local, repo=self.repo.parent / "elsewhere", env=env)

    def token(self, user: str, role: str) -> str:
        return str(self.local.json("tokens", "create", "--user", user, "--role", role)["token"])

    def proposals(self) -> list[dict[str, Any]]:
        return list(self.local.json("proposals", "list"))


@pytest.fixture
def site(tmp_path: Path, store_url: str) -> Iterator[Site]:
    repo = init_repository(tmp_path / "ops").path
    (tmp_path / "elsewhere").mkdir()
    local = make_cli(repo, store_url)
    local.env["TERRY_ACTOR"] = "lead"
    up = local("example", "up")
    assert up.exit_code == 0, up.stdout + up.stderr
    try:
        yield Site(repo, local)
    finally:
        example.down(config_for(repo))


def _rejected_fix(site: Site) -> tuple[str, int]:
    """db-01's service down, its fix waiting for review, rejected: (incident, proposal)."""
    site.local("example", "break", "db-01", "service")
    [outcome] = site.local.json("alert", "ingest", "-", input=FIRING)["proposals"]
    assert outcome["state"] == "awaiting_review", outcome
    pid = int(outcome["proposal_id"])
    rejected = site.local("proposals", "reject", str(pid), "--reason", "not now")
    assert rejected.exit_code == 0, rejected.stderr
    return str(outcome["incident_id"]), pid


def test_a_rejected_fix_is_proposed_again_and_refusals_say_why(site: Site) -> None:
    incident, first = _rejected_fix(site)
    # Alertmanager repeats the firing alert: it joins the open incident, nothing new.
    again = site.local.json("alert", "ingest", "-", input=FIRING)
    assert again["proposals"] == [] and [p["id"] for p in site.proposals()] == [first]

    done = site.local.json("incidents", "retry", incident, "--reason", "the window is open")
    assert done["previous"] == [{"proposal": first, "state": "rejected"}]
    [outcome] = done["proposals"]
    second = outcome["proposal_id"]
    assert second not in (None, first) and outcome["state"] == "awaiting_review", outcome
    story = site.local.json("incidents", "show", incident)
    assert story["incident"]["attention"] is None or "proposal" in story["incident"]["attention"]
    said = [e for e in story["timeline"] if "retry asked" in e["detail"]]
    assert said and said[0]["actor"] == "lead", story["timeline"]
    assert "the window is open" in said[0]["detail"]

    busy = site.local("incidents", "retry", incident)
    assert busy.exit_code == 5
    assert f"proposal {second} is awaiting review" in busy.stderr, busy.stderr

    approved = site.local("proposals", "approve", str(second))  # fixed: verified
    assert approved.exit_code == 0, approved.stdout + approved.stderr
    resolved = payload(
        [alert("ServiceDown", fingerprint="retry-svc", status="resolved", host="db-01")],
        status="resolved",
    )
    site.local.json("alert", "ingest", "-", input=resolved)
    closed = site.local("incidents", "retry", incident)
    assert closed.exit_code == 5 and "it is resolved" in closed.stderr, closed.stderr

    missing = site.local("incidents", "retry", "999999")
    assert missing.exit_code == 4 and "does not exist" in missing.stderr

    store = Store(site.local.env.get("TERRY_DATABASE_URL") or config_for(site.repo).store_url)
    try:
        drift = open_incident(
            store,
            source="drift",
            fingerprint="drift:x",
            title="Drift on 1 host(s): web-01",
            host="web-01",
            labels={},
            annotations={},
            holder="test",
        )
        mark_diagnosed(store, drift)
    finally:
        store.dispose()
    elsewhere = site.local("incidents", "retry", str(drift))
    assert elsewhere.exit_code == 5 and "terry drift fix" in elsewhere.stderr, elsewhere.stderr


def test_remotely_an_operator_retries_and_the_server_carries_it(site: Site, store_url: str) -> None:
    incident, first = _rejected_fix(site)
    viewer, operator = site.token("vic", "viewer"), site.token("oscar", "operator")
    server = Serve(site.repo, env={"TERRY_DATABASE_URL": store_url})
    try:
        refused = site.remote(server, viewer)("incidents", "retry", incident)
        assert refused.exit_code == 11, refused.stdout + refused.stderr
        assert "may not retry" in refused.stderr
        posing = site.remote(server, operator)("incidents", "retry", incident, "--as", "lead")
        assert posing.exit_code == 11 and "lead" in posing.stderr, posing.stderr
        assert [p["id"] for p in site.proposals()] == [first]  # nothing happened

        asked = site.remote(server, operator)
        done = asked.json("incidents", "retry", incident, "--reason", "fixed the policy")
        assert done["state"] == "queued" and done["incident"] == int(incident), done
        deadline = time.monotonic() + 120
        while len(site.proposals()) < 2:
            assert time.monotonic() < deadline, server.log.read_text()[-3000:]
            time.sleep(0.5)
        newest = site.proposals()[0]
        assert newest["state"] in ("proposed", "checked", "awaiting_review"), newest
        story = site.local.json("incidents", "show", incident)
        said = [e for e in story["timeline"] if "retry asked" in e["detail"]]
        assert said[0]["actor"].startswith("api:oscar"), said
        assert operator not in str(story) + asked("incidents", "show", incident).stdout
    finally:
        server.stop()
