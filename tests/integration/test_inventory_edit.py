"""``terry inventory add|set|remove|graph`` on the example fleet: each edit is a commit on a
branch (the YAML edited in place), dry-run, gated, reviewed, merged, applied and verified
like any proposal; bad edits are refused before anything is written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from terry.app import build_pipeline
from terry.demo import example
from terry.gitops.repo import Repo
from terry.proposals.state import ProposalState, transition
from terry.store import Store
from tests.conftest import Cli, config_for, make_cli

pytestmark = pytest.mark.integration

HOSTS = "inventories/example/hosts.yml"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    repo = tmp_path_factory.mktemp("inventory") / "ops"
    cli = make_cli(repo)
    created = cli("init", str(repo))
    assert created.exit_code == 0, created.stdout + created.stderr
    up = cli("example", "up")
    assert up.exit_code == 0, up.stdout + up.stderr
    yield cli
    example.down(config_for(repo))


def _main(cli: Cli, path: str = HOSTS) -> str:
    repo = Repo(cli.repo)
    return repo.read_text(repo.head(), path) or ""


def test_set_converges_the_host_through_review_and_a_clean_rescan(fleet: Cli) -> None:
    cli = fleet
    before = _main(cli)
    proposed = cli.json("inventory", "set", "web-01", "app_config_max_connections=250")
    assert proposed["state"] == "awaiting_review" and proposed["converge"] is True
    assert any("an inventory edit changes the desired state" in r for r in proposed["reasons"])
    shown = cli.json("proposals", "show", str(proposed["proposal_id"]))
    # The dry run is the desired state run on the host: what the edit changes there.
    assert "-max_connections = 100" in shown["check_diff"]
    assert "+max_connections = 250" in shown["check_diff"]
    assert _main(cli) == before  # nothing on main until someone approves

    approved = cli("proposals", "approve", str(proposed["proposal_id"]))
    assert approved.exit_code == 0, approved.stdout + approved.stderr
    done = cli.json("proposals", "show", str(proposed["proposal_id"]))
    assert done["summary"]["state"] == "verified", done["outcome"]
    assert "the inventory on main says so" in done["outcome"]
    assert "match the desired state" in done["outcome"]
    live = cli.repo / ".terry" / "hosts" / "web-01" / "etc" / "app" / "app.conf"
    assert "max_connections = 250" in live.read_text()
    # Edited in place: one line added under web-01, every comment and other line kept.
    after = _main(cli)
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert added == ["          app_config_max_connections: 250"]
    assert after.startswith(before.split("all:")[0])  # the file's leading comments
    incident = cli.json("incidents", "show", str(proposed["incident_id"]))
    assert incident["incident"]["state"] == "resolved"
    text = cli("proposals", "show", str(proposed["proposal_id"]))
    assert text.exit_code == 0 and "History" in text.stdout


def test_add_then_remove_a_host_are_desired_state_edits(fleet: Cli) -> None:
    cli = fleet
    root = str(cli.repo / ".terry" / "hosts" / "web-03")
    added = cli.json(
        "inventory",
        "add",
        "web-03",
        "--group",
        "staging",
        "--var",
        f"terry_root={root}",
        "--var",
        "terry_labels={role: web}",
    )
    assert added["state"] == "awaiting_review" and added["converge"] is False
    shown = cli.json("proposals", "show", str(added["proposal_id"]))
    assert "+        web-03:" in shown["check_diff"]
    assert shown["playbook"] is None  # nothing runs on hosts: merging is the change
    cli.ok("proposals", "approve", str(added["proposal_id"]))
    assert (
        cli.json("proposals", "show", str(added["proposal_id"]))["summary"]["state"] == "verified"
    )
    host = cli.json("inventory", "show", "web-03")
    assert host["environment"] == "staging" and host["labels"] == {"role": "web"}
    graph = cli.json("inventory", "graph", "staging")
    assert "web-03" in graph["hosts"]

    removed = cli.json("inventory", "remove", "web-03")
    cli.ok("proposals", "approve", str(removed["proposal_id"]))
    assert (
        cli.json("proposals", "show", str(removed["proposal_id"]))["summary"]["state"] == "verified"
    )
    assert "web-03" not in {h["name"] for h in cli.json("inventory", "list")}
    assert "web-03" not in _main(cli)


def test_a_host_vars_file_is_edited_where_it_is(fleet: Cli) -> None:
    cli = fleet
    path = "inventories/example/host_vars/web-02.yml"
    (cli.repo / path).parent.mkdir(exist_ok=True)
    (cli.repo / path).write_text("# web-02's own settings\napp_config_log_level: info  # quiet\n")
    Repo(cli.repo).commit_paths([path], "host_vars for web-02")
    edited = cli.json("inventory", "set", "web-02", "app_config_log_level=debug", "--no-converge")
    assert edited["files"] == [path]
    cli.ok("proposals", "approve", str(edited["proposal_id"]))
    head, line = _main(cli, path).splitlines()
    assert head == "# web-02's own settings"
    assert line.startswith("app_config_log_level: debug") and line.endswith("# quiet")


def test_an_edit_that_breaks_validation_is_denied_and_main_is_untouched(fleet: Cli) -> None:
    cli = fleet
    before = _main(cli)
    result = cli("inventory", "set", "db-01", "terry_environment=qa", "--no-converge")
    assert result.exit_code == 1, result.stdout
    assert "denied" in result.stdout
    assert "terry_environment 'qa' is not one of" in result.stdout
    assert _main(cli) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "nowhere", "a=1"), "no host 'nowhere' in the inventory on main"),
        (("add", "web-09", "--group", "qa"), "no group 'qa'"),
        (("add", "web-01", "--group", "staging"), "web-01 is already in group staging"),
        (("set", "web-01", "x={{ lookup('pipe', 'id') }}"), "a Jinja2 template"),
        (("set", "web-01", "x=a {% raw %}"), "a Jinja2 template"),
        (("set", "web-01", "terry_disk_quota_mb=32"), "the inventory already says so"),
        (("set", "web-01", "--unset", "terry_tenant"), "comes from a group"),
        (("set", "web-01", "bad name=1"), "a variable name is letters"),
        (("set", "web-01"), "nothing to set"),
        (("add", "$(reboot)", "--group", "staging"), "a host name is letters"),
        (("add", "web-09", "--group", "all"), "--group all: name a group"),
        # what can make Ansible run a command here, in the dry run before any review
        (
            ("set", "db-01", "ansible_ssh_common_args=-o ProxyCommand='touch /tmp/x'"),
            "ansible_ssh_common_args: says how Ansible reaches or runs on the host",
        ),
        (("set", "web-01", "ansible_connection=local"), "ansible_connection: says how"),
        (("set", "web-01", "ansible_become_exe=/tmp/x"), "ansible_become_exe: says how"),
        (("set", "web-01", "ansible_python_interpreter=/tmp/x"), "ansible_python_interpreter"),
        (("set", "web-01", "ansible_host=-oProxyCommand=x"), "expected a plain host"),
        (("set", "web-01", "ansible_port=22 -o x"), "expected a plain port"),
        # one node under several names; nested, a value without bound
        (("set", "web-01", "terry_x=&a [*a]"), "no YAML anchors or aliases"),
        (("set", "web-01", "terry_x=[&a [1, 2], *a]"), "no YAML anchors or aliases"),
    ],
)
def test_bad_edits_are_refused_before_anything_is_written(
    fleet: Cli, args: tuple[str, ...], message: str
) -> None:
    cli = fleet
    refs = Repo(cli.repo)._git("for-each-ref")
    incidents = cli.json("incidents", "list")
    result = cli("inventory", *args)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert Repo(cli.repo)._git("for-each-ref") == refs  # no branch, no commit
    assert cli.json("incidents", "list") == incidents


def test_whoever_asked_for_a_production_edit_does_not_approve_it(fleet: Cli) -> None:
    cli = fleet
    proposed = cli.as_("alice").json("inventory", "set", "db-01", "terry_labels={tier: db}")
    assert proposed["state"] == "awaiting_review", proposed
    pid = str(proposed["proposal_id"])
    incident = cli.json("incidents", "show", str(proposed["incident_id"]))
    assert incident["labels"]["author"] == "alice"

    refused = cli.as_("alice")("proposals", "approve", pid)
    assert refused.exit_code == 11, refused.stdout + refused.stderr
    said = " ".join(refused.stderr.split())
    assert "alice may not approve proposal" in said and "separation of duties" in said
    assert cli.json("proposals", "show", pid)["summary"]["state"] == "awaiting_review"

    approved = cli.as_("bob")("proposals", "approve", pid)
    assert approved.exit_code == 0, approved.stdout + approved.stderr
    done = cli.json("proposals", "show", pid)
    assert done["summary"]["state"] == "verified" and done["approved_by"] == "bob"


def _two_edits(cli: Cli, first: str, second: str) -> int:
    """Two edits of the same line of web-02 wait for review; the first is approved and
    merged. The second's id."""
    ids = []
    for value in (first, second):
        proposed = cli.json("inventory", "set", "web-02", f"terry_labels.tier={value}")
        assert proposed["state"] == "awaiting_review", proposed
        ids.append(proposed["proposal_id"])
    approved = cli("proposals", "approve", str(ids[0]))
    assert approved.exit_code == 0, approved.stdout + approved.stderr
    return ids[1]


def _not_merged(cli: Cli, proposal_id: int) -> None:
    shown = cli.json("proposals", "show", str(proposal_id))
    assert shown["summary"]["state"] == "rejected", shown["summary"]
    assert shown["outcome"] == f"not merged: main changed {HOSTS} since its branch was made"
    incident = cli.json("incidents", "show", str(shown["summary"]["incident_id"]))["incident"]
    assert incident["attention"].startswith(
        f"proposal {proposal_id} was not merged: main changed {HOSTS} since its branch was "
        "made, and the two changes conflict; nothing was merged or applied. Next: "
    ), incident["attention"]
    assert "run the command that asked for it again" in incident["attention"]
    again = cli("proposals", "approve", str(proposal_id))
    assert again.exit_code == 5 and "it was rejected" in again.stderr, again.stderr


def test_an_edit_that_conflicts_with_one_merged_before_it_is_rejected_with_why(
    fleet: Cli,
) -> None:
    """Approving the second of two edits of one line cannot merge it: it is rejected (no
    proposal stuck approved), says which file main changed, and main keeps the first."""
    second = _two_edits(fleet, "frontend", "backend")

    refused = fleet("proposals", "approve", str(second))

    assert refused.exit_code == 7, refused.stdout + refused.stderr
    assert f"main changed {HOSTS} since the branch was made (a conflict)" in refused.stderr
    assert f"proposal {second} is rejected: nothing was merged or applied" in refused.stderr
    _not_merged(fleet, second)
    assert "tier: frontend" in _main(fleet) and "backend" not in _main(fleet)


def test_an_approved_edit_resumed_after_a_restart_that_conflicts_is_rejected(
    fleet: Cli,
) -> None:
    """Approved, then the process stopped before its merge; main took another edit of the
    same line meanwhile. Resuming it rejects it instead of trying the merge at every start."""
    second = _two_edits(fleet, "cache", "queue")
    config = config_for(fleet.repo)
    store = Store(config.store_url)
    transition(
        store,
        second,
        ProposalState.APPROVED,
        actor="alice",
        reason="approved by alice",
        allowed_from=(ProposalState.AWAITING_REVIEW,),
    )

    build_pipeline(config, store).advance(second)

    _not_merged(fleet, second)
    assert "tier: cache" in _main(fleet) and "queue" not in _main(fleet)


def test_edits_write_what_ansible_reads_back_and_never_change_a_shared_mapping(
    tmp_path: Path,
) -> None:
    """The inventory is written by a YAML 1.2 writer and read by Ansible's YAML 1.1 loader:
    a host named ``on`` or a value ``yes`` is quoted, or Ansible reads True. A mapping the
    file shares through an anchor is another host's too: changing it is refused."""
    cli = make_cli(tmp_path / "ops")
    cli.ok("init", str(cli.repo))
    text = (cli.repo / HOSTS).read_text()
    labels = "terry_labels:\n            role: web\n"
    assert text.count(labels) >= 2, text  # web-01's and web-02's, as terry init writes them
    shared = text.replace(labels, "terry_labels: &weblabels\n            role: web\n", 1)
    shared = shared.replace(labels, "terry_labels: *weblabels\n", 1)
    (cli.repo / HOSTS).write_text(shared)
    Repo(cli.repo).commit_paths([HOSTS], "web-02 shares web-01's labels")

    refused = cli("inventory", "set", "web-02", "terry_labels.tier=canary", "--no-converge")
    assert refused.exit_code == 2, refused.stdout + refused.stderr
    assert "shares this mapping through a YAML anchor (&weblabels)" in refused.stderr

    added = cli.json("inventory", "add", "on", "--group", "staging", "--var", "terry_root=/srv/on")
    branch = cli.json("proposals", "show", str(added["proposal_id"]))["summary"]["branch"]
    written = Repo(cli.repo).read_text(branch, HOSTS) or ""
    assert '"on":' in written, written
    said = cli.json("inventory", "set", "db-01", 'terry_labels.tier="yes"', "--no-converge")
    branch = cli.json("proposals", "show", str(said["proposal_id"]))["summary"]["branch"]
    assert 'tier: "yes"' in (Repo(cli.repo).read_text(branch, HOSTS) or "")
