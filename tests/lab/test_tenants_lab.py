"""Issue 17's example on the lab: two teams, their addresses, their policies, their tokens.

The lab's hosts take the example's addresses (``LabConfig.addresses``): lab-01 (production)
and lab-02 (staging) in 192.168.90.0/24, team-platform's; lab-03 (staging) in 10.0.1.0/24,
team-data's. The tenants file is the shipped ``examples/tenants.yml``, byte for byte, and the
inventory names no ``terry_tenant``, so its selectors alone place the hosts.

The same disk fault on lab-02 and lab-03: lab-02 fixes itself (team-platform, low risk,
staging); lab-03 waits although it is staging too (team-data: can_auto_resolve false).
lab-01's service fault waits too (production). Through a real ``terry serve`` and the
remote CLI with API tokens: a team-data operator cannot approve team-platform's proposal,
nor see its hosts, even by guessing ids; a viewer's, a revoked and an expired token are
refused; then the team-data operator approves lab-03's fix, applied over SSH and verified.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from terry import lab
from terry.demo.lab import point_at_lab
from terry.gitops.init import content_root, init_repository
from terry.gitops.repo import Repo
from terry.ports import free_port
from tests.conftest import Cli, make_cli
from tests.lab.helpers import TerryServe, df_percent, wait_for

NEEDS = [
    "/usr/sbin/sshd",
    "/usr/bin/prometheus",
    "/usr/bin/prometheus-alertmanager",
    "/usr/bin/prometheus-node-exporter",
]
NAMES = {
    "bridge": "terrylabn0",
    "subnet": "10.87.0.0/24",
    "netns_prefix": "terryten-",
    "veth_prefix": "tlabn",
    "tenant": "",  # no terry_tenant in the inventory: the tenants file places the hosts
    "addresses": {
        "lab-01": "192.168.90.11/24",
        "lab-02": "192.168.90.12/24",
        "lab-03": "10.0.1.13/24",
    },
}
WEBHOOK_TOKEN = "lab-webhook-token-of-the-tenants-test"
TENANTS = "policies/tenants.yml"
TIMEOUT = 90.0


def _commit_tenants(repo: Path, text: str, message: str) -> None:
    (repo / TENANTS).write_text(text)
    Repo(repo).commit_paths([TENANTS], message)


def _validate(cli: Cli) -> tuple[int, dict[str, str]]:
    result = cli("inventory", "validate", "--output", "json")
    problems = json.loads(result.stdout)["problems"] if result.stdout.strip() else []
    return result.exit_code, {p["host"]: p["message"] for p in problems if p["rule"] == "tenant"}


def _by_host(cli: Cli) -> dict[str, dict[str, Any]]:
    """The newest proposal of each host, as the local CLI (every tenant) lists them."""
    found: dict[str, dict[str, Any]] = {}
    for proposal in sorted(cli.json("proposals", "list"), key=lambda p: p["id"]):
        for host in proposal["hosts"]:
            found[host] = proposal
    return found


def _states(cli: Cli) -> dict[str, str]:
    return {host: p["state"] for host, p in _by_host(cli).items()}


def _stuck(cli: Cli, server: TerryServe) -> str:
    return f"{_states(cli)}\nserve log:\n{server.log.read_text()[-3000:]}"


def _token(cli: Cli, *args: str) -> tuple[str, str]:
    made = cli.json("tokens", "create", *args)
    return made["id"], made["token"]


def _remote(cli: Cli, url: str, token: str) -> Cli:
    return Cli(cli.repo, {**cli.env, "TERRY_SERVER": url, "TERRY_TOKEN": token})


def test_the_teams_example_on_the_lab(tmp_path: Path, lab_config: lab.LabConfig) -> None:
    started = time.monotonic()
    repo = init_repository(tmp_path / "ops", example=False).path
    example = (repo / "examples" / "tenants.yml").read_text()
    assert example == (content_root() / "examples" / "tenants.yml").read_text()
    port = free_port()
    lab.down(lab_config)  # leftovers of an interrupted earlier run
    state = lab.up(
        lab_config,
        hosts=3,
        repo=repo,
        webhook_url=f"http://127.0.0.1:{port}/api/v1/alerts",
        webhook_token=WEBHOOK_TOKEN,
    )
    server = None
    try:
        assert state.addresses == {
            "lab-01": "192.168.90.11",
            "lab-02": "192.168.90.12",
            "lab-03": "10.0.1.13",
        }
        hosts = yaml.safe_load(state.inventory.read_text())  # type: ignore[union-attr]
        assert "terry_tenant" not in json.dumps(hosts)
        point_at_lab(repo, state)
        cli = make_cli(repo)

        # validate on the lab inventory: a host in two tenants and one in none are reported.
        narrowed = example.replace('hosts: ["192.168.90.*"]', "hosts: [lab-02]", 1)
        narrowed = narrowed.replace("groups: [production]", "groups: []", 1)
        narrowed = narrowed.replace('hosts: ["10.0.1.*"]', 'hosts: ["10.0.1.*", lab-02]', 1)
        assert narrowed.count("lab-02") == 2, "examples/tenants.yml changed: update this test"
        _commit_tenants(repo, narrowed, "tenants: overlapping, to see validate report it")
        code, problems = _validate(cli)
        assert code == 1, problems
        assert problems["lab-01"] == f"in no tenant: no selector of {TENANTS} matches it"
        assert problems["lab-02"].startswith("in two tenants: team-data, team-platform")
        assert "lab-03" not in problems

        # The example as shipped: every lab host in exactly one tenant, by its address.
        _commit_tenants(repo, example, "tenants: the example of issue 17")
        assert _validate(cli) == (0, {})
        listed = {h["name"]: h for h in cli.json("inventory", "list")}
        assert {n: h["environment"] for n, h in listed.items()} == {
            "lab-01": "production",
            "lab-02": "staging",
            "lab-03": "staging",
        }

        print(f"\nlab up and validated: {time.monotonic() - started:.1f}s")
        server = TerryServe(repo, port, {"TERRY_WEBHOOK_TOKEN": WEBHOOK_TOKEN})
        broken = time.monotonic()
        # lab-01 loses its service and lab-03's disk fills: both wait, each for its reason.
        # Then lab-02's disk fills, the same fault as lab-03's, once lab-03's proposal waits:
        # a fault at the same moment would fold into lab-03's proposal (a storm,
        # terry.proposals.storm), which does not yet keep tenants apart.
        lab.break_host(state, "lab-01", "service")
        lab.break_host(state, "lab-03", "disk")
        waiting = {"lab-01": "awaiting_review", "lab-03": "awaiting_review"}
        assert wait_for(lambda: _states(cli) == waiting, TIMEOUT, interval=1), _stuck(cli, server)
        lab.break_host(state, "lab-02", "disk")
        platform, data = _by_host(cli)["lab-01"], _by_host(cli)["lab-03"]
        reasons = cli.json("proposals", "show", str(data["id"]))["reasons"]
        assert any("tenant team-data never merges on its own" in r for r in reasons), reasons
        # (lab-02's fix goes on while its neighbours' tokens are tried)
        assert wait_for(lambda: "lab-02" in _states(cli), TIMEOUT, interval=0.5), _stuck(
            cli, server
        )
        other = _by_host(cli)["lab-02"]

        # Tokens, made as an operator of the machine would.
        _id, dana = _token(cli, "--user", "dana", "--role", "operator", "--tenant", "team-data")
        _id, viewer = _token(cli, "--user", "vera", "--role", "viewer", "--tenant", "team-data")
        gone_id, gone = _token(cli, "--user", "dana", "--role", "operator", "--tenant", "team-data")
        cli.ok("tokens", "revoke", gone_id)
        _id, brief = _token(
            cli, "--user", "dana", "--role", "operator", "--tenant", "team-data", "--expires", "1s"
        )
        expires = time.monotonic() + 1.0
        as_dana = _remote(cli, server.url, dana)

        # dana reads team-data only: lists never show a team-platform host, and guessed ids
        # of team-platform's rows are answered exactly as missing ones.
        assert {h for p in as_dana.json("proposals", "list") for h in p["hosts"]} == {"lab-03"}
        assert {i["host"] for i in as_dana.json("incidents", "list")} == {"lab-03"}
        for args in (
            ("proposals", "show", str(platform["id"])),
            ("proposals", "show", str(other["id"])),
            ("incidents", "show", str(platform["incident_id"])),
            ("proposals", "approve", str(platform["id"])),
        ):
            guessed = as_dana(*args)
            missing = as_dana(*args[:-1], "99999")
            assert guessed.exit_code == missing.exit_code == 4, guessed.stderr
            said = guessed.stderr.replace(f" {args[-1]} ", " 99999 ")
            assert said == missing.stderr, (guessed.stderr, missing.stderr)

        # ... and on the machine, as herself, she is refused with the reason.
        refused = cli.as_("dana")("proposals", "approve", str(platform["id"]))
        assert refused.exit_code == 5, refused.stdout + refused.stderr
        assert "dana is not a member or reviewer of tenant team-platform" in " ".join(
            refused.stderr.split()
        )

        # A viewer's token may not approve; a revoked or expired token reads nothing.
        looked = _remote(cli, server.url, viewer)("proposals", "approve", str(data["id"]))
        assert looked.exit_code == 11 and "viewer" in looked.stderr, looked.stderr
        time.sleep(max(0.0, expires + 0.2 - time.monotonic()))  # the brief one has expired
        for token in (gone, brief):
            shut = _remote(cli, server.url, token)("proposals", "list")
            assert shut.exit_code == 11 and "refused the token" in shut.stderr, shut.stderr
        log = server.log.read_text()
        assert "revoked since" in log and "expired since" in log
        assert not any(t[12:] in log for t in (dana, viewer, gone, brief))
        for pid in (platform["id"], data["id"]):
            shown = cli.json("proposals", "show", str(pid))["summary"]
            assert shown["state"] == "awaiting_review", shown

        # dana approves team-data's fix: merged, applied over SSH, verified; her CLI waits
        # for the apply on the server and prints the outcome.
        approved = as_dana("proposals", "approve", str(data["id"]), "--output", "json")
        outcome = wait_for(
            lambda: (p := _by_host(cli)["lab-03"])["state"] in ("verified", "failed") and p,
            TIMEOUT,
            interval=1,
        )
        assert outcome and outcome["state"] == "verified", outcome
        assert df_percent(state, "lab-03") < 80
        assert approved.exit_code == 0, approved.stderr
        said = json.loads(approved.stdout)
        assert said["state"] == "verified", said
        assert said["approved_by"].startswith("api:dana (token "), said

        # and team-platform's staging host has fixed itself meanwhile.
        fixed = {"lab-01": "awaiting_review", "lab-02": "verified", "lab-03": "verified"}
        assert wait_for(lambda: _states(cli) == fixed, TIMEOUT, interval=1), _stuck(cli, server)
        assert cli.json("proposals", "show", str(other["id"]))["summary"]["decision"] == "merge"
        assert df_percent(state, "lab-02") < 80
        print(f"\nfaults to both fixed, lab-01 waiting: {time.monotonic() - broken:.1f}s")
        print(f"\nteams example on the lab: {time.monotonic() - started:.1f}s")
    finally:
        if server is not None:
            server.stop()
        report = lab.down(lab_config)
        assert not report.problems, report.problems
