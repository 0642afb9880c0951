"""Drift on the example fleet (no root): the scan, the reports, ``drift fix``, and the
schedules that run them, with their deliveries to a directory and to webhooks (a local
HTTP receiver that answers like Slack's and Discord's: 200 or 204, or fails on purpose).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select
from starlette.testclient import TestClient

from terry.cli import main
from terry.config import load_config
from terry.demo import example
from terry.gitops.repo import Repo
from terry.service.schedules import Scheduler
from terry.service.server import create_app
from terry.store import Store
from terry.store.locks import named_lock
from terry.store.models import ScheduleRunRow
from tests.conftest import Cli, config_for, make_cli

pytestmark = pytest.mark.integration


class Hooks:
    """Webhook endpoints: /slack (200 "ok"), /discord (204), /broken (500)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append((self.path, json.loads(body)))
                status = {"/slack": 200, "/discord": 204}.get(self.path, 500)
                self.send_response(status)
                payload = b"ok" if status == 200 else b""
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, Hooks]]:
    repo = tmp_path_factory.mktemp("drift") / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    hooks = Hooks()
    config = yaml.safe_load((repo / "terry.yml").read_text())
    config["schedules"] = [
        {
            "name": "nightly",
            "cron": "0 3 * * *",
            "report_format": "html",
            "deliver": [
                {"dir": "reports"},
                {"webhook_url_env": "SLACK_URL", "webhook_kind": "slack"},
                {"webhook_url_env": "DISCORD_URL", "webhook_kind": "discord"},
            ],
        },
        {
            "name": "broken-hook",
            "interval": 3600,
            "deliver": [{"webhook_url_env": "BROKEN_URL"}],
        },
    ]
    (repo / "terry.yml").write_text(yaml.safe_dump(config))
    cli = make_cli(repo)
    cli.env.update(
        {
            "SLACK_URL": hooks.url("/slack"),
            "DISCORD_URL": hooks.url("/discord"),
            "BROKEN_URL": hooks.url("/broken"),
        }
    )
    up = cli("example", "up")
    assert up.exit_code == 0, up.stdout + up.stderr
    yield cli, hooks
    example.down(config_for(repo))
    hooks.server.shutdown()


def _root(cli: Cli, host: str) -> Path:
    return cli.repo / ".terry" / "hosts" / host


def _items(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(h["host"], i["resource"], i["state"]) for h in report["hosts"] for i in h["items"]}


def test_scan_reports_each_change_on_its_host_then_persisting_and_resolved(
    fleet: tuple[Cli, Hooks],
) -> None:
    cli, _hooks = fleet
    clean = cli("drift", "scan", "--exit-code")
    assert clean.exit_code == 0, clean.stdout + clean.stderr
    conf = _root(cli, "web-01") / "etc" / "app" / "app.conf"
    original = conf.read_text()
    conf.write_text(original.replace("max_connections = 100", "max_connections = 5000"))
    cli.ok("example", "break", "web-02", "service")

    first = cli.json("drift", "scan")
    assert first["schema"] == "terry.drift/v1"
    assert _items(first) == {
        ("web-01", "file /etc/app/app.conf", "new"),
        ("web-02", "service web", "new"),
    }
    [item] = next(h for h in first["hosts"] if h["host"] == "web-01")["items"]
    assert "-max_connections = 5000" in item["diff"]
    assert "+max_connections = 100" in item["diff"]
    assert "--- before: live" in item["diff"] and "+++ after: desired" in item["diff"]
    assert first["summary"]["by_severity"] == {"medium": 1, "low": 1}

    conf.write_text(original)
    second = cli.json("drift", "scan")
    assert _items(second) == {
        ("web-01", "file /etc/app/app.conf", "resolved"),
        ("web-02", "service web", "persisting"),
    }
    assert cli("drift", "scan", "--exit-code").exit_code == 1
    limited = cli.json("drift", "scan", "--limit", "web-01")
    assert [h["host"] for h in limited["hosts"]] == ["web-01"]
    nothing = cli("drift", "scan", "--limit", "no-such-host")
    assert nothing.exit_code == 2 and "matches no host" in nothing.stderr


def test_reports_in_three_formats(fleet: tuple[Cli, Hooks]) -> None:
    cli, _hooks = fleet
    newest = json.loads(cli("drift", "report", "--format", "json").stdout)
    assert newest["limit"] == "web-01"  # the last scan was limited to web-01
    full = str(newest["scan_id"] - 1)  # the one before covered every host
    md = cli("drift", "report", "--scan", full).stdout
    assert md.startswith(f"# Drift report: scan {full}")
    assert "### web-02: drifted" in md and "service web" in md
    out = cli.repo / "drift.html"
    written = cli("drift", "report", "--scan", full, "--format", "html", "--out", str(out))
    assert written.exit_code == 0
    html = out.read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html and "<rect" in html
    assert "http" not in html.replace("http-equiv", "")  # one file, nothing fetched
    data = json.loads(cli("drift", "report", "--format", "json").stdout)
    assert set(data) >= {"schema", "scan_id", "summary", "hosts", "history"}
    assert len(data["history"]) >= 3
    missing = cli("drift", "report", "--scan", "99999")
    assert missing.exit_code == 4 and "does not exist" in missing.stderr


def test_drift_fix_reconciles_through_review(fleet: tuple[Cli, Hooks]) -> None:
    cli, _hooks = fleet
    fixed = cli.json("drift", "fix")
    assert fixed["hosts"] == ["web-02"] and fixed["state"] == "awaiting_review", fixed
    shown = cli.json("proposals", "show", str(fixed["proposal_id"]))
    assert shown["summary"]["remedy"] == "reconcile-drift"
    assert "import_playbook: ../site.yml" in shown["playbook"]
    approved = cli.as_("alice").json("proposals", "approve", str(fixed["proposal_id"]))
    assert approved["state"] == "verified", approved
    assert "match the desired state" in approved["outcome"]
    cli.ok("drift", "scan", "--exit-code")
    incident = cli.json("incidents", "show", str(fixed["incident_id"]))
    assert incident["incident"]["state"] == "resolved"


def test_a_schedule_delivers_to_a_directory_and_webhooks(fleet: tuple[Cli, Hooks]) -> None:
    cli, hooks = fleet
    cli.ok("example", "break", "db-01", "service")
    done = cli.json("schedule", "run", "nightly")
    assert done["status"] == "done", done
    latest = (cli.repo / "reports" / "latest.html").read_text()
    assert latest == (cli.repo / "reports" / f"drift-{done['scan_id']}.html").read_text()
    slack = [body for path, body in hooks.received if path == "/slack"][-1]
    assert slack["text"].startswith(f"Terry drift scan {done['scan_id']}: 3 host(s), 1 drifted")
    assert "db-01: service web (new)" in slack["text"]
    discord = [body for path, body in hooks.received if path == "/discord"][-1]
    assert discord["allowed_mentions"] == {"parse": []} and len(discord["content"]) <= 2000
    # A webhook that fails: recorded, the run failed, nothing else lost.
    broken = cli("schedule", "run", "broken-hook", "--output", "json")
    assert broken.exit_code == 1
    assert "json webhook ($BROKEN_URL) answered 500" in json.loads(broken.stdout)["detail"]
    listed = {s["name"]: s for s in cli.json("schedule", "list")}
    assert listed["nightly"]["last_run"]["status"] == "done"
    assert listed["broken-hook"]["last_run"]["status"] == "failed"


def test_one_run_of_a_schedule_at_a_time(fleet: tuple[Cli, Hooks]) -> None:
    cli, _hooks = fleet
    store = Store(config_for(cli.repo).store_url)
    try:
        with named_lock(store, "schedule:nightly", ttl=timedelta(minutes=5)) as taken:
            assert taken
            skipped = cli.json("schedule", "run", "nightly")
        assert skipped["status"] == "skipped"
        assert "still going" in skipped["detail"]
        after = cli.json("schedule", "run", "nightly")  # free again
        assert after["status"] == "done"
    finally:
        store.dispose()


def test_terry_serve_runs_schedules_when_due(fleet: tuple[Cli, Hooks]) -> None:
    cli, _hooks = fleet
    raw = yaml.safe_load((cli.repo / "terry.yml").read_text())
    raw["schedules"] = [{"name": "every-second", "interval": 1, "deliver": [{"dir": "often"}]}]
    config = load_config(cli.repo, overrides={"schedules": raw["schedules"]})
    store = Store(config.store_url)
    try:
        app = create_app(config, store, scheduler=Scheduler(config, store), token="t")
        with TestClient(app):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with store.session() as session:
                    done = session.scalars(
                        select(ScheduleRunRow).where(
                            ScheduleRunRow.name == "every-second", ScheduleRunRow.status == "done"
                        )
                    ).all()
                if done:
                    break
                time.sleep(0.5)
        assert done, "the scheduler never ran the schedule"
        assert (cli.repo / "often" / "latest.md").read_text().startswith("# Drift report")
    finally:
        store.dispose()


def test_a_declared_os_that_the_host_does_not_run_is_drift(fleet: tuple[Cli, Hooks]) -> None:
    cli, _hooks = fleet
    host_vars = cli.repo / "inventories" / "example" / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / "db-01.yml").write_text(yaml.safe_dump({"terry_os": "Plan9 4"}))
    Repo(cli.repo).commit_paths(["inventories/example/host_vars"], "db-01: declare its OS")
    report = cli.json("drift", "scan", "--limit", "db-01:web-01")
    [db] = [h for h in report["hosts"] if h["host"] == "db-01"]
    [os_item] = [i for i in db["items"] if i["kind"] == "os"]
    assert os_item["resource"] == "os" and os_item["severity"] == "high"
    assert os_item["detail"].endswith("inventory says Plan9 4")
    assert "distribution" in db["facts"]  # gathered where declared
    [web] = [h for h in report["hosts"] if h["host"] == "web-01"]
    assert "distribution" not in web["facts"] and not web["items"]  # and only there
