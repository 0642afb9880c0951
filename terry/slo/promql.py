"""A spec's queries checked as PromQL when they are read, by the grammar Prometheus parses
them with (promql-parser, the Rust crate's port of it), so that a mistake is the spec's error
naming its field, not a rule file Prometheus refuses or a status that is always unknown.

A query is checked with its range placeholder (``{{.window}}``) filled in, as Sloth does
before it parses one."""

from __future__ import annotations

import promql_parser

from terry.slo.objective import WINDOW

__all__ = ["promql_problem"]


def promql_problem(query: str) -> str | None:
    """What Prometheus would refuse in ``query`` (its parser's words), or None."""
    try:
        promql_parser.parse(query.replace(WINDOW, "5m"))
    except ValueError as exc:
        return f"not PromQL ({str(exc)[:200]})"
    return None
