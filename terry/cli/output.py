"""How commands print: rich tables for people, JSON for scripts. Only the CLI imports this."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

__all__ = ["OUTPUT_KEY", "console", "emit_json", "err_console", "output_option", "to_jsonable"]

OUTPUT_KEY = "terry.output"
F = TypeVar("F", bound=Callable[..., Any])

# Wide enough for tables when piped or captured; a terminal's own width when there is one.
_WIDTH = None if sys.stdout.isatty() else 140
console = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


def _remember(ctx: click.Context, _param: click.Parameter, value: str) -> str:
    ctx.meta[OUTPUT_KEY] = value
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


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=False))
