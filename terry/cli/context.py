"""What every command needs: the repository, its configuration, the store, a reporter."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape

from terry.appliers.base import EventStatus, RunnerEvent
from terry.cli.output import console, err_console, inert
from terry.config import Config, find_repo, load_config
from terry.redact import configure, install_log_filter
from terry.store import Store

if TYPE_CHECKING:
    from terry.pipeline import Pipeline

__all__ = [
    "RichReporter",
    "actor_name",
    "caller_name",
    "open_config",
    "open_pipeline",
    "open_store",
]

_STYLE = {
    EventStatus.OK: "green",
    EventStatus.CHANGED: "yellow",
    EventStatus.FAILED: "bold red",
    EventStatus.UNREACHABLE: "bold red",
    EventStatus.SKIPPED: "cyan",
    EventStatus.IGNORED: "magenta",
}


class RichReporter:
    """Live progress per host and task. In JSON mode it writes to stderr, keeping stdout clean."""

    def __init__(self, out: Console) -> None:
        self.out = out

    def step(self, proposal_id: int | None, message: str) -> None:
        prefix = f"[bold]#{proposal_id}[/bold] " if proposal_id else ""
        self.out.print(f"▶ {prefix}", end="", markup=True, highlight=False)
        # the message may carry diffs and alert text: never rich markup
        self.out.print(message, markup=False, highlight=False)

    def event(self, proposal_id: int, kind: str, event: RunnerEvent) -> None:
        if event.status is None or event.host is None:
            return
        style = _STYLE.get(event.status, "")
        host = escape(inert(event.host))
        line = f"    {kind:<8} {host:<12} [{style}]{event.status.value:<11}[/{style}] "
        self.out.print(line, end="", markup=True, highlight=False)
        detail = inert(event.task or "")
        if event.status in (EventStatus.FAILED, EventStatus.UNREACHABLE) and event.message:
            detail += f" — {inert(event.message.splitlines()[0][:200])}"
        self.out.print(detail, markup=False, highlight=False)


def open_config(ctx: click.Context) -> Config:
    root = ctx.find_root()
    repo: Path | None = root.obj
    config = load_config(repo.resolve() if repo else find_repo(Path.cwd()))
    # What the configuration names as secret is redacted from this process's stored text
    # and from every log record (the CLI's entry to a repository; terry serve's too).
    configure(config)
    install_log_filter()
    return config


def open_store(config: Config) -> Store:
    store = Store(config.store_url)
    store.migrate()
    return store


def open_pipeline(ctx: click.Context, output: str) -> tuple[Config, Store, Pipeline]:
    from terry.app import build_pipeline  # the whole pipeline: only for commands that act

    config = open_config(ctx)
    store = open_store(config)
    reporter = RichReporter(err_console if output == "json" else console)
    return config, store, build_pipeline(config, store, reporter=reporter)


def actor_name(config: Config, given: str | None) -> str:
    """Who is acting: the caller (``caller_name``), or ``--as NAME`` when that is the
    caller or the caller is one of terry.yml's ``admins`` (``terry.access.act_as``), as
    ``NAME (by CALLER)``: the audit keeps who acted, and separation of duties sees both;
    PermissionDenied (exit 11) otherwise."""
    from terry.access import act_as
    from terry.errors import PermissionDenied

    caller = caller_name(config)
    decision = act_as(caller, given or None, admin=caller in config.admins)
    if not decision:
        raise PermissionDenied(decision.reason)
    if given and given != caller:
        return f"{given} (by {caller})"
    return caller


def caller_name(config: Config) -> str:
    """Who runs this command: TERRY_ACTOR / terry.yml's actor, else git's user.name, else
    the login."""
    if config.actor:
        return config.actor
    from terry.gitops.repo import Repo  # GitPython: only when git is asked

    name = Repo(config.repo, main_branch=config.main_branch).user_name()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
