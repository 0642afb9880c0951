"""The ``terry`` command. Only this package imports click; it maps Terry's exception tree
to one-line messages and exit codes that scripts can trust:

0 ok · 1 failure · 2 bad input · 3 config · 4 not found · 5 not allowed in this state ·
6 store · 7 git · 8 runner · 9 policy · 10 forge · 11 permission · 12 server unreachable

Each subcommand's module is imported only when that subcommand runs (``terry --help``
imports none of them): the table below names each command's module and the first
paragraph of its help, which ``--help`` shows (``tests/unit/test_cli_lazy.py`` holds the
table to the commands' own help).
"""

from __future__ import annotations

import gc
import importlib
import json
import sys
from gettext import gettext as _
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import click

from terry.errors import TerryError

__all__ = ["main"]


class Entry(NamedTuple):
    module: str  # the module defining the command
    attribute: str  # the command's name in that module
    help: str  # the first paragraph of the command's help, as --help shows it


COMMANDS: dict[str, Entry] = {
    "alert": Entry("terry.cli.alerts", "command", "Feed Alertmanager alerts to Terry."),
    "cost": Entry(
        "terry.cli.cost",
        "command",
        "Cost: prices as data (costs/prices.yml on main), utilisation from Prometheus.",
    ),
    "chaos": Entry(
        "terry.cli.chaos",
        "command",
        "Chaos experiments: break a host on purpose and time how Terry fixes it.",
    ),
    "demo": Entry(
        "terry.cli.demo", "command", "Run the whole loop and print a timeline per incident."
    ),
    "drift": Entry(
        "terry.cli.drift",
        "command",
        "Drift: where live hosts differ from the desired state in the repository.",
    ),
    "example": Entry(
        "terry.cli.example",
        "command",
        "The example hosts (local connection, scratch roots) the walkthrough runs on.",
    ),
    "explain": Entry(
        "terry.cli.incidents",
        "explain_command",
        "A plain-language account of an incident: what happened, what Terry (or Claude) "
        "concluded, what each proposal went through, and where it stands.",
    ),
    "forecast": Entry(
        "terry.cli.forecast",
        "command",
        "Forecast disks and memory from Prometheus, flag odd hosts, prevent what is coming.",
    ),
    "incidents": Entry(
        "terry.cli.incidents",
        "command",
        "Incidents: one problem on one target, built from alerts that share a fingerprint.",
    ),
    "init": Entry("terry.cli.init", "command", "Create (or adopt) a GitOps repository at PATH."),
    "inventory": Entry(
        "terry.cli.inventory",
        "command",
        "The inventory on main: hosts, their environment, tenant, labels and applier.",
    ),
    "lab": Entry(
        "terry.cli.lab",
        "command",
        "The lab: SSH hosts in namespaces with real Prometheus and Alertmanager (root).",
    ),
    "notifications": Entry(
        "terry.cli.notifications",
        "command",
        "Notifications: routes in terry.yml, an outbox in the store, sent through apprise.",
    ),
    "policy": Entry(
        "terry.cli.policy",
        "command",
        "The gate's policies (policies/ on main) and learning from outcomes.",
    ),
    "proposals": Entry(
        "terry.cli.proposals",
        "command",
        "Proposals: concrete fixes (playbook + branch + dry run + decision) and their review.",
    ),
    "remedies": Entry(
        "terry.cli.remedies",
        "command",
        "Remedies: the catalogue (roles/*/remedies.yml) and how its variants compare.",
    ),
    "report": Entry(
        "terry.cli.report",
        "command",
        "Reports over Terry's record: incidents, fixes, rollbacks, time saved.",
    ),
    "schedule": Entry(
        "terry.cli.schedule",
        "command",
        "Scheduled drift scans and fixes, the weekly report, and where their reports go.",
    ),
    "serve": Entry(
        "terry.cli.serve",
        "command",
        "Serve Alertmanager's webhook and Terry's API, and remediate in the background.",
    ),
    "slo": Entry(
        "terry.cli.slo",
        "command",
        "Error budgets: SLOs as code (slos/ on main), read from Prometheus.",
    ),
    "sync": Entry(
        "terry.cli.sync",
        "command",
        "Read every open pull request of Terry's and act on it, as the webhook would.",
    ),
    "tokens": Entry(
        "terry.cli.tokens",
        "command",
        "API tokens: a role in a tenant for one user, shown once, stored as a digest.",
    ),
}

# Commands whose package may be absent (the lab commands arrive with the lab package).
OPTIONAL = {"lab": "terry.lab"}


class TerryGroup(click.Group):
    """Root group: imports a subcommand's module when it is asked for, and turns a
    TerryError anywhere below into one line and its exit code (and, with ``--output
    json``, click's usage errors into the same JSON line)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *(name for name in COMMANDS if _present(name))})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        entry = COMMANDS[cmd_name]
        try:
            module = _import_for_good(entry.module)
        except ImportError:
            if cmd_name in OPTIONAL and not _present(cmd_name):
                return None
            raise
        command: click.Command = getattr(module, entry.attribute)
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, but a command not imported yet is described by its entry in
        ``COMMANDS`` (the same text its own help would give)."""
        commands = [(name, self._described(name)) for name in self.list_commands(ctx)]
        commands = [(name, cmd) for name, cmd in commands if not cmd.hidden]
        if not commands:
            return
        limit = formatter.width - 6 - max(len(name) for name, _cmd in commands)
        rows = [(name, cmd.get_short_help_str(limit)) for name, cmd in commands]
        with formatter.section(_("Commands")):
            formatter.write_dl(rows)

    def _described(self, name: str) -> click.Command:
        loaded = self.commands.get(name)
        if loaded is not None:
            return loaded
        return click.Command(name, help=COMMANDS[name].help)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGV_KEY] = list(args)  # for a usage error met before --output is read
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except TerryError as exc:
            from terry.cli.output import OUTPUT_KEY, inert
            from terry.redact import redact

            # The message may quote another system or a label: redacted, and inert as text.
            message = redact(str(exc)).replace("\n", " ").strip() or type(exc).__name__
            if ctx.meta.get(OUTPUT_KEY) == "json":
                click.echo(json.dumps({"error": message, "exit_code": exc.exit_code}), err=True)
            else:
                click.echo(f"terry: error: {inert(message)}", err=True)
            ctx.exit(exc.exit_code)
        except click.ClickException as exc:  # a usage error: click's words, click's code (2)
            from terry.cli.output import OUTPUT_KEY

            asked = ctx.meta.get(OUTPUT_KEY)
            if asked is None:  # click stopped before it read --output: look at the words
                asked = "json" if _asks_json(ctx.meta.get(_ARGV_KEY, [])) else "text"
            if asked != "json":
                raise  # the usage and the error, as click says them
            error = {"error": exc.format_message(), "exit_code": exc.exit_code}
            click.echo(json.dumps(error), err=True)
            ctx.exit(exc.exit_code)


_ARGV_KEY = "terry.argv"


def _asks_json(argv: list[str]) -> bool:
    """Whether the command's words ask for JSON (``-o json``, ``-ojson``, ``--output=json``;
    a report's ``--format json``), read as they are when click stopped before its options."""
    for n, word in enumerate(argv):
        if word == "--":
            return False
        if word in ("-o", "--output", "--format") and argv[n + 1 : n + 2] == ["json"]:
            return True
        if word in ("-ojson", "--output=json", "--format=json"):
            return True
    return False


def _import_for_good(name: str) -> ModuleType:
    """Import a command's module without the garbage collector walking, again and again,
    the objects the import makes (SQLAlchemy's and pydantic's: they live until exit), then
    freeze them (``gc.freeze``) so that later collections, and the one at exit, skip them.
    This saves about a quarter of the CPU time of a read command such as ``terry incidents
    list``; nothing else changes (what an import leaves unreachable is kept until exit)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return importlib.import_module(name)
    finally:
        if enabled:
            gc.enable()
        gc.freeze()


def _present(name: str) -> bool:
    """Whether a command's package is installed (always, except an absent optional one)."""
    package = OPTIONAL.get(name)
    if package is None:
        return True
    from importlib.util import find_spec

    return find_spec(package) is not None


@click.group(cls=TerryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TERRY_REPO",
    help="The GitOps repository (default: the nearest terry.yml at or above the cwd).",
)
@click.option(
    "--server",
    metavar="URL",
    help="Remote mode: talk to this terry serve (default: $TERRY_SERVER) with the API "
    "token in $TERRY_TOKEN, instead of opening the store (incidents list|show, explain, "
    "proposals ...).",
)
@click.option(
    "--token-env",
    metavar="VAR",
    help="Remote mode: the variable holding the API token (default: TERRY_TOKEN). The "
    "token itself is never an option.",
)
@click.version_option(package_name="terry")
@click.pass_context
def main(ctx: click.Context, repo: Path | None, server: str | None, token_env: str | None) -> None:
    """Terry turns alerts into reviewed, verified Ansible fixes kept in git.

    \b
    Start here:
      terry init ./ops            create a GitOps repository with an example fleet
      cd ops && terry example up  start the example hosts (local scratch roots)
      terry alert ingest FILE     feed an Alertmanager webhook payload
      terry proposals list        see what Terry proposes and what the gate decided

    \b
    From another machine (remote mode, with a token from `terry tokens create`):
      export TERRY_SERVER=https://terry.example.org TERRY_TOKEN=tk_...
      terry proposals approve 12  as the token's user, if its role may
    """
    ctx.obj = repo
    if server:
        ctx.meta["terry.server"] = server  # terry.cli.remote.SERVER_KEY
    if token_env:
        ctx.meta["terry.token_env"] = token_env  # terry.cli.remote.TOKEN_ENV_KEY


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
