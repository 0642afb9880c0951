"""The ``terry`` command. Only this package imports click; it maps Terry's exception tree
to one-line messages and exit codes that scripts can trust:

0 ok · 1 failure · 2 bad input · 3 config · 4 not found · 5 not allowed in this state ·
6 store · 7 git · 8 runner · 9 policy
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from terry.cli.output import OUTPUT_KEY
from terry.errors import TerryError

__all__ = ["main"]


class TerryGroup(click.Group):
    """Root group: turns a TerryError anywhere below into one line and its exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except TerryError as exc:
            message = str(exc).replace("\n", " ").strip() or type(exc).__name__
            if ctx.meta.get(OUTPUT_KEY) == "json":
                click.echo(json.dumps({"error": message, "exit_code": exc.exit_code}), err=True)
            else:
                click.echo(f"terry: error: {message}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=TerryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TERRY_REPO",
    help="The GitOps repository (default: the nearest terry.yml at or above the cwd).",
)
@click.version_option(package_name="terry")
@click.pass_context
def main(ctx: click.Context, repo: Path | None) -> None:
    """Terry turns alerts into reviewed, verified Ansible fixes kept in git.

    \b
    Start here:
      terry init ./ops            create a GitOps repository with an example fleet
      cd ops && terry example up  start the example hosts (local scratch roots)
      terry alert ingest FILE     feed an Alertmanager webhook payload
      terry proposals list        see what Terry proposes and what the gate decided
    """
    ctx.obj = repo


def _register() -> None:
    from terry.cli import (
        alerts,
        demo,
        drift,
        example,
        forecast,
        incidents,
        init,
        inventory,
        policy,
        proposals,
        report,
        schedule,
        serve,
        sync,
    )

    for module in (
        init,
        alerts,
        incidents,
        proposals,
        sync,
        serve,
        drift,
        forecast,
        schedule,
        report,
        inventory,
        policy,
        example,
        demo,
    ):
        main.add_command(module.command)
    main.add_command(incidents.explain_command)
    try:
        from terry.cli import lab
    except ImportError:  # the lab commands arrive with the lab package
        return
    main.add_command(lab.command)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
