"""``terry`` starts fast: ``--help`` imports no subcommand, a read command no heavy client.

The help listing comes from a static table (``terry.cli.COMMANDS``), so these tests hold it
to the commands' own help: same names, same text, same ``--help`` output at any width.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import terry.cli
from terry.cli import COMMANDS, main
from terry.gitops.init import init_repository
from terry.store import MIGRATIONS, head_revision

pytestmark = pytest.mark.unit

# Clients and frameworks only the commands that act (or serve) need.
HEAVY = (
    "alembic",
    "anthropic",
    "ansible_runner",
    "fastapi",
    "github",
    "httpx",
    "sklearn",
    "sqlalchemy",
    "uvicorn",
)
WIDTHS = (50, 80, 120, 200)


def _python(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_terry_cli_loads_no_heavy_client() -> None:
    code = (
        "import terry.cli, sys; print(sorted(m for m in sys.modules"
        f" if m.split('.')[0] in {HEAVY!r}))"
    )
    assert _python(code).strip() == "[]"


def test_help_lists_every_command_as_its_own_help_says() -> None:
    """``terry --help`` before any command is imported == after all are, at every width."""
    code = """
import json, sys
import click
from terry.cli import main

def helps():
    out = []
    for width in json.loads(sys.argv[1]):
        ctx = click.Context(main, info_name="terry", terminal_width=width, max_content_width=width)
        out.append(main.get_help(ctx))
    return out

lazy = helps()
imported = sorted(m for m in sys.modules if m.startswith("terry.cli."))
ctx = click.Context(main, info_name="terry")
for name in main.list_commands(ctx):
    main.get_command(ctx, name)
print(json.dumps({"lazy": lazy, "imported": imported, "eager": helps()}))
"""
    found = json.loads(_python(code, json.dumps(WIDTHS)))
    assert found["imported"] == []
    assert found["lazy"] == found["eager"]
    for name in COMMANDS:
        assert f"\n  {name} " in found["eager"][-1]


def test_the_table_is_each_commands_own_name_and_help() -> None:
    ctx = click.Context(main, info_name="terry")
    assert main.list_commands(ctx) == sorted(COMMANDS)
    for name, entry in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.short_help is None, f"{name}: --help shows short_help, not the table"
        first = inspect.cleandoc(command.help or "").split("\n\n")[0]
        assert " ".join(first.split()) == entry.help, name


def test_every_command_module_is_in_the_table() -> None:
    """A new ``terry/cli/*.py`` with a ``command`` is reachable only through the table."""
    listed = {(entry.module, entry.attribute) for entry in COMMANDS.values()}
    package = Path(inspect.getfile(terry.cli)).parent
    for path in sorted(package.glob("[!_]*.py")):
        module = importlib.import_module(f"terry.cli.{path.stem}")
        commands = {
            attribute: value
            for attribute, value in vars(module).items()
            if isinstance(value, click.Command)
            and getattr(value.callback, "__module__", None) == module.__name__
        }
        nested = {
            id(sub)
            for group in commands.values()
            if isinstance(group, click.Group)
            for sub in group.commands.values()
        }
        for attribute, value in commands.items():
            if id(value) not in nested:
                assert (module.__name__, attribute) in listed, f"{module.__name__}.{attribute}"


def test_head_revision_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_head_revision_refuses_what_is_not_one_plain_chain(tmp_path: Path) -> None:
    def write(name: str, revision: str, down: str) -> None:
        (tmp_path / name).write_text(f"revision = {revision}\ndown_revision = {down}\n")

    write("0001_a.py", '"0001"', "None")
    write("0002_b.py", '"0002"', '"0001"')
    assert head_revision(tmp_path) == "0002"
    write("0003_c.py", '"0003"', '"0001"')  # two heads
    assert head_revision(tmp_path) is None
    write("0003_c.py", '"0003"', '("0001", "0002")')  # a merge
    assert head_revision(tmp_path) is None
    write("0003_c.py", "make_id()", '"0002"')  # not a literal
    assert head_revision(tmp_path) is None
    (tmp_path / "0003_c.py").write_text(
        'revision = "0003"\ndown_revision = "0002"\ndepends_on = "0001"\n'
    )
    assert head_revision(tmp_path) is None


def test_a_read_command_loads_no_heavy_client(tmp_path: Path) -> None:
    """``terry incidents list`` on a store at the newest schema: the store and its models,
    not Alembic, the Anthropic client, PyGithub, scikit-learn, the runner or the pipeline."""
    repo = init_repository(tmp_path / "ops").path
    code = """
import json, sys
from terry.cli import main
try:
    main(["--repo", sys.argv[1], "incidents", "list", "-o", "json"])
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = {m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2]))
pipeline = {m for m in sys.modules if m in ("terry.pipeline", "terry.steps")}
print(json.dumps(sorted(heavy | pipeline)), file=sys.stderr)
"""
    for when in ("migrates", "at head"):
        done = subprocess.run(
            [sys.executable, "-c", code, str(repo), json.dumps(HEAVY)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == []
        loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
        if when == "migrates":
            assert "alembic" in loaded  # a new store: Alembic builds the schema
        else:
            assert loaded == {"sqlalchemy"}, loaded


@pytest.mark.parametrize(
    "args",
    [
        ["proposals", "show", "abc", "--output", "json"],
        ["proposals", "list", "--state", "nonsense", "-o", "json"],
        ["incidents", "list", "-o", "json", "--limit", "x"],
        ["remedies", "compare", "disk-usage-high", "--min-runs", "0", "--output", "json"],
    ],
)
def test_a_usage_error_asked_for_in_json_is_one_json_line(args: list[str], tmp_path: Path) -> None:
    # a script that asked for JSON gets its error as JSON too, with click's exit code (2),
    # whichever option or argument was wrong and wherever --output stands
    init_repository(tmp_path / "ops")
    result = CliRunner().invoke(main, ["--repo", str(tmp_path / "ops"), *args])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    said = json.loads(line)
    assert said["exit_code"] == 2 and said["error"].startswith("Invalid value for"), said
    assert result.stdout == ""
    # as text: click's usage, then the error, as before
    text = CliRunner().invoke(main, ["--repo", str(tmp_path / "ops"), "proposals", "show", "abc"])
    assert text.exit_code == 2 and text.stderr.startswith("Usage: ")
    assert "Error: Invalid value for 'PROPOSAL_ID'" in text.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["slo", "status", "-o", "json", "--bogus"],
        ["remedies", "compare", "--nope", "--output=json"],
        ["proposals", "list", "-ojson", "--state"],
        ["incidents", "list", "--output", "json", "extra"],
        ["report", "weekly", "--format", "json", "--bogus"],
        ["report", "weekly", "--format=json", "--bogus"],
    ],
)
def test_a_usage_error_met_before_output_is_read_is_json_too(
    args: list[str], tmp_path: Path
) -> None:
    # click stops at an unknown option (or a missing value) before it reads --output: the
    # words asked for JSON all the same, so the error is the one JSON line
    init_repository(tmp_path / "ops")
    result = CliRunner().invoke(main, ["--repo", str(tmp_path / "ops"), *args])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    said = json.loads(line)
    assert said["exit_code"] == 2 and said["error"], said
    assert result.stdout == ""
    # "-o json" after "--" is an argument, not the option: click's usage, as text
    text = CliRunner().invoke(
        main, ["--repo", str(tmp_path / "ops"), "slo", "status", "--bogus", "--", "-o", "json"]
    )
    assert text.exit_code == 2 and text.stderr.startswith("Usage: "), text.stderr
