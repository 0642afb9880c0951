"""PromQL written by people (SLO specs, ``canary.queries``) checked when it is read, by the
grammar Prometheus parses it with (promql-parser, the Rust crate's port of Prometheus's own
parser), so that a mistake is an error naming its field, not a rule file Prometheus refuses
or a check that is always unknown."""

from __future__ import annotations

from collections.abc import Mapping

import promql_parser

__all__ = ["promql_problem"]


def promql_problem(query: str, fill: Mapping[str, str] | None = None) -> str | None:
    """What Prometheus would refuse in ``query`` (its parser's words), or None. ``fill``:
    placeholders replaced first by a value of their kind (``{{.window}}`` by ``5m``, as
    Sloth does before it parses a query)."""
    for placeholder, value in (fill or {}).items():
        query = query.replace(placeholder, value)
    try:
        promql_parser.parse(query)
    except ValueError as exc:
        return f"not PromQL ({str(exc)[:200]})"
    return None
