"""``terry init PATH``."""

from __future__ import annotations

from pathlib import Path

import click

from terry.cli.output import console, emit_json, output_option
from terry.gitops.init import init_repository


@click.command("init")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-example", is_flag=True, help="Do not write the example inventory.")
@output_option
def command(path: Path, no_example: bool, output: str) -> None:
    """Create (or adopt) a GitOps repository at PATH.

    \b
    It holds inventories/, roles/, playbooks/, policies/, examples/ and terry.yml, with a
    commit. Existing files are never overwritten. The example inventory has three hosts
    reached with Ansible's local connection, each with a scratch root under .terry/hosts/.
    """
    result = init_repository(path, example=not no_example)
    if output == "json":
        emit_json(result)
        return
    verb = "Created" if result.created else "Adopted"
    console.print(f"{verb} GitOps repository {result.path} at commit {result.commit[:10]}")
    if result.example_hosts:
        console.print(f"Example hosts: {', '.join(result.example_hosts)}")
    console.print(
        "\nNext:\n"
        f"  cd {path}\n"
        "  terry example up                                   # start the example hosts\n"
        "  terry example break web-01 disk                    # fill its data volume\n"
        "  terry alert ingest examples/alerts/disk-usage-high.json"
    )
