"""Labels, annotations and titles with terminal escapes print inert through the real CLI.

An alert's labels and annotations are anyone's text. Printed raw, an escape sequence clears
the screen, sets the window title or recolours what follows; a carriage return overwrites a
line; U+202E shows text backwards; rich markup or an emoji code restyles the output. Every
command a person reads shows them visibly instead (``\\x1b``, ``<U+202E>``, ``[bold]`` as
written), and ``--output json`` keeps the exact text, escaped by JSON.

Real git, real ansible (the example hosts' dry run, local connection), SQLite.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from terry.demo import example
from tests.conftest import Cli, alert, config_for, make_cli, payload

pytestmark = pytest.mark.integration

# What a terminal would act on, each seen in its own label or annotation.
CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home
TITLE = "\x1b]0;pwned\x07"  # OSC: set the window title, ended by BEL
CSI8 = "\x9b31m"  # 8-bit CSI: red
RLO = "\u202e"  # right-to-left override
ZWSP = "\u200b"  # zero-width space: "web\u200b-01" looks like "web-01"
CR = "\rfixed    2026-01-01"  # overwrite the line with a forged field
MARKUP = "[bold red]not styled[/bold red] :warning:"

LABELS = {
    "team": f"ops{CLEAR}{TITLE}",
    "note": f"safe{RLO}gnp.exe{ZWSP}",
    "color": f"{CSI8}red",
    "style": MARKUP,
    "line": f"one{CR}",
}
ANNOTATIONS = {"summary": f"disk full{CLEAR}{RLO}{MARKUP}{CR}", "runbook": f"see{TITLE}"}
# A title nothing matches: the incident is kept for a person, saying so.
HOSTILE_TITLE = f"Weird{CLEAR}{RLO}Alert"

RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u200b", "\r")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, dict[str, Any]]]:
    repo = tmp_path_factory.mktemp("inert") / "ops"
    cli = make_cli(repo)
    cli.ok("init", str(repo))
    cli.ok("example", "up")
    body = payload(
        [
            alert(
                "DiskUsageHigh",
                fingerprint="inert-disk",
                host="web-01",
                mountpoint="/srv/data",
                annotations=ANNOTATIONS,
                **LABELS,
            ),
            alert(HOSTILE_TITLE, fingerprint="inert-weird", host="web-02", **LABELS),
        ]
    )
    ingested = cli.json("alert", "ingest", "-", "--no-apply", input=body)
    yield cli, ingested
    example.down(config_for(repo))


def _printed(cli: Cli, *args: str) -> str:
    result = cli.ok(*args)
    return result.stdout + result.stderr


def _assert_inert(text: str) -> None:
    for char in RAW:
        assert char not in text, f"{char!r} printed raw:\n{text!r}"
    assert "⚠" not in text  # :warning: is not an emoji code here


def _incidents(ingested: dict[str, Any]) -> tuple[int, int]:
    ids = {a["alertname"]: a["incident_id"] for a in ingested["alerts"]}
    return ids["DiskUsageHigh"], ids[HOSTILE_TITLE]


def test_incidents_show_prints_labels_annotations_and_title_inert(
    fleet: tuple[Cli, dict[str, Any]],
) -> None:
    cli, ingested = fleet
    disk, weird = _incidents(ingested)
    shown = _printed(cli, "incidents", "show", str(disk))
    _assert_inert(shown)
    assert "team=ops\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07" in shown
    assert "note=safe<U+202E>gnp.exe<U+200B>" in shown
    assert "color=\\x9b31mred" in shown
    assert f"style={MARKUP}" in shown  # markup and emoji codes print as written
    assert "line=one\\rfixed    2026-01-01" in shown  # one line: no forged field
    titled = _printed(cli, "incidents", "show", str(weird))
    _assert_inert(titled)
    assert "Weird\\x1b[2J\\x1b[H<U+202E>Alert" in titled


def test_incidents_list_prints_titles_inert(fleet: tuple[Cli, dict[str, Any]]) -> None:
    cli, _ingested = fleet
    listed = _printed(cli, "incidents", "list")
    _assert_inert(listed)
    assert "Weird\\x1b[2J\\x1b[H<U+202E>" in listed  # the cell may cut the rest


def test_proposals_show_prints_inert(fleet: tuple[Cli, dict[str, Any]]) -> None:
    cli, ingested = fleet
    [outcome] = [o for o in ingested["proposals"] if o["proposal_id"] is not None]
    shown = _printed(cli, "proposals", "show", str(outcome["proposal_id"]), "--events")
    _assert_inert(shown)
    assert "disk-usage-high on web-01" in shown
    listed = _printed(cli, "proposals", "list")
    _assert_inert(listed)


def test_explain_without_claude_tells_the_story_inert(
    fleet: tuple[Cli, dict[str, Any]],
) -> None:
    cli, ingested = fleet
    disk, weird = _incidents(ingested)
    told = _printed(cli, "explain", str(disk), "--no-ai")
    _assert_inert(told)
    # the summary is one line of the account, its escapes visible, its markup text
    [said] = [line for line in told.splitlines() if line.startswith("The alert says: ")]
    assert said == (
        f"The alert says: disk full\\x1b[2J\\x1b[H<U+202E>{MARKUP}\\rfixed    2026-01-01"
    )
    _assert_inert(_printed(cli, "explain", str(weird), "--no-ai"))


def test_json_output_keeps_the_exact_text_escaped_by_json(
    fleet: tuple[Cli, dict[str, Any]],
) -> None:
    cli, ingested = fleet
    disk, weird = _incidents(ingested)
    for args in (
        ("incidents", "show", str(disk)),
        ("incidents", "list"),
        ("explain", str(disk), "--no-ai"),
    ):
        result = cli(*args, "--output", "json")
        assert result.exit_code == 0, result.stderr
        for char in RAW:
            assert char not in result.stdout, f"{args}: {char!r} raw in JSON"
    story = json.loads(cli("incidents", "show", str(disk), "--output", "json").stdout)
    assert story["labels"]["team"] == LABELS["team"]  # the data itself is unchanged
    assert story["annotations"]["summary"] == ANNOTATIONS["summary"]
    weird_story = json.loads(cli("incidents", "show", str(weird), "--output", "json").stdout)
    assert weird_story["incident"]["title"] == HOSTILE_TITLE


def test_git_history_holds_no_hidden_character(fleet: tuple[Cli, dict[str, Any]]) -> None:
    """Commit messages and notes are read in ``git log``, which shows what it is given: the
    hostile text that reached them is visible there, never raw."""
    cli, _ingested = fleet
    shown = subprocess.run(
        ["git", "log", "--all", "--format=%B%n%N"],
        cwd=cli.repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "fix(" in shown  # the proposal's commit is there
    for raw in RAW:
        assert raw not in shown, repr(raw)
