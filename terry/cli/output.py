"""How commands print: rich tables for people, JSON for scripts. Only the CLI imports this.

Everything printed for people is inert (``terry.inert``): the consoles render every string
they are given, and every table cell, with control, format and invisible characters shown
visibly, so an escape sequence or a right-to-left override in a label prints as ``\\x1b`` or
``<U+202E>`` and never acts on the terminal. Rich markup and emoji codes are off unless a
line opts in (then it ``escape``s what it interpolates), so ``[bold]`` or ``:warning:`` in
a label prints as written. Text printed past the consoles (``Syntax``, ``click.echo``) is
passed through ``inert`` where it is printed. JSON escapes control characters itself.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from terry.errors import InputError
from terry.inert import inert
from terry.jsonable import to_jsonable

__all__ = [
    "OUTPUT_KEY",
    "console",
    "emit_json",
    "emit_report",
    "err_console",
    "inert",
    "output_option",
    "report_options",
    "to_jsonable",
]

OUTPUT_KEY = "terry.output"
F = TypeVar("F", bound=Callable[..., Any])

# Wide enough for tables when piped or captured; a terminal's own width when there is one.
_WIDTH = None if sys.stdout.isatty() else 140


class InertConsole(Console):
    """A rich console that renders every string it is given inert (newlines and tabs kept:
    one-line fields are made one line where they are printed, with ``inert``)."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(inert(text, multiline=True), **kwargs)


# markup=False: alert text, labels and diffs reach these consoles and must print as they are
# ("[/]" in a label must not crash or restyle the output). Styled lines opt in with
# markup=True and escape() what they interpolate. emoji=False: ":warning:" stays text.
console = InertConsole(highlight=False, soft_wrap=True, width=_WIDTH, markup=False, emoji=False)
err_console = InertConsole(
    stderr=True, highlight=False, soft_wrap=True, width=_WIDTH, markup=False, emoji=False
)


def _remember(ctx: click.Context, _param: click.Parameter, value: str) -> str:
    ctx.meta[OUTPUT_KEY] = value
    return value


def _remember_report(ctx: click.Context, param: click.Parameter, value: str) -> str:
    _remember(ctx, param, "json" if value == "json" else "text")
    return value


def output_option(func: F) -> F:
    """``--output text|json`` on a command; the choice is also seen by the error handler."""
    return click.option(
        "--output",
        "-o",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        is_eager=True,
        callback=_remember,
        help="text for people, json for scripts (stable keys).",
    )(func)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=False))


def report_options(html: str) -> Callable[[F], F]:
    """``--format md|html|json`` (also spelled ``--output``/``-o``, as every other command
    takes ``--output json``) and ``--out FILE`` on a report command; ``html`` says what the
    page holds besides the text ("a chart", "charts")."""

    def wrap(func: F) -> F:
        func = click.option(
            "--out",
            type=click.Path(dir_okay=False, writable=True, path_type=Path),
            help="Write to FILE, atomically (default: stdout).",
        )(func)
        return click.option(
            "--format",
            "--output",
            "-o",
            "fmt",
            type=click.Choice(["md", "html", "json"]),
            default="md",
            show_default=True,
            is_eager=True,
            callback=_remember_report,  # errors as JSON too when asked for json
            help=f"md to read or paste, html for one self-contained page with {html}, json "
            "for tools (--output json, as for every command, is the same).",
        )(func)

    return wrap


def emit_report(text: str, out: Path | None, what: str) -> None:
    """A rendered report to stdout, or to ``out`` with one line on stderr saying ``what``."""
    if out is None:
        click.echo(inert(text, multiline=True), nl=False)
        return
    from terry.reports.markup import write_atomically  # jinja2: only when writing a report

    try:
        write_atomically(out, text)
    except OSError as exc:
        raise InputError(f"cannot write --out {out}: {exc.strerror or exc}") from exc
    err_console.print(f"wrote {out} ({what})", markup=False)
