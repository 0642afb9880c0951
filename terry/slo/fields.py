"""What the Sloth and OpenSLO models share: their pydantic base, names, labels as YAML gives
them, and pydantic's ``ValidationError`` said as a ``ConfigError`` naming file and field."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from terry.errors import ConfigError

__all__ = [
    "NAME",
    "Labels",
    "Model",
    "Number",
    "PromLabels",
    "Templates",
    "explain",
    "template_problem",
]

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$"  # a service's or an SLO's name


class Model(BaseModel):
    """A spec's mapping: read-only, fields Terry does not use are kept (``alerting``...)."""

    model_config = ConfigDict(extra="allow", frozen=True)


def _label_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and not any(isinstance(v, list | dict) for v in value):
        return ",".join(_label_value(v) for v in value)  # OpenSLO: a list of values
    raise ValueError("a label's value is a string (or a list of strings)")


def _labels(value: Any) -> dict[str, str]:
    """Labels as YAML gives them (``tier: 2``, ``generated: true``), as strings."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("labels are a mapping of names to values")
    return {str(k): _label_value(v) for k, v in value.items()}


Labels = Annotated[dict[str, str], BeforeValidator(_labels)]
_PROM_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


# Go's text/template, as Prometheus expands an alerting rule's labels and annotations: the
# actions that open a block closed by {{ end }}.
_OPENS = frozenset({"if", "range", "with", "define", "block"})
_KEYWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an action's first word, as Go lexes it


def template_problem(text: str) -> str | None:
    """Why Prometheus would refuse ``text`` as a template (an alerting rule's label or
    annotation), or None. It reads what Go's template parser reads first: actions
    (``{{ ... }}``) that close, with their strings and comments closed, none empty, and as
    many ``{{ end }}`` as blocks opened. A template that passes may still fail to expand
    (a function Prometheus lacks): that is said when the alert fires, not when rules load.
    """
    depth, at = 0, 0
    while (start := text.find("{{", at)) != -1:
        i = start + 2
        if text.startswith("- ", i):
            i += 2
        body_start = i
        if text.startswith("/*", i):  # {{/* a comment */}}: no quotes read inside it
            close = text.find("*/", i)
            if close == -1:
                return "a comment {{/* ... */}} is not closed"
            i = close + 2
            if not text.startswith(("}}", " -}}"), i):
                return "a comment must end its action: {{/* ... */}}"
            at = text.find("}}", i) + 2
            continue
        quote: str | None = None
        while i < len(text):
            c = text[i]
            if quote is not None:
                if c == "\\" and quote != "`":
                    i += 2
                    continue
                if c == quote:
                    quote = None
            elif c in "\"`'":
                quote = c
            elif text.startswith("}}", i):
                break
            i += 1
        else:
            if quote is not None:
                return f"a quoted string in {text[start : start + 40]!r} is not closed"
            return f"an action {text[start : start + 40]!r} is not closed with }}}}"
        body = text[body_start:i].removesuffix(" -").strip()
        if not body:
            return "an action {{ }} is empty"
        keyword = found.group() if (found := _KEYWORD.match(body)) else ""
        if keyword in _OPENS:
            depth += 1
        elif keyword == "end":
            depth -= 1
            if depth < 0:
                return "an {{ end }} closes no block"
        at = i + 2
    if depth > 0:
        return "a block ({{ if }}, {{ range }}, {{ with }} ...) is not closed with {{ end }}"
    return None


def _templates(value: Any) -> dict[str, str]:
    found = _labels(value)
    for name, text in found.items():
        problem = template_problem(text)
        if problem is not None:
            raise ValueError(
                f"{name[:60]}: {problem}: Prometheus reads it as a Go template and would "
                "refuse the rule file"
            )
    return found


def _prom_labels(value: Any) -> dict[str, str]:
    labels = _templates(value)
    for name in labels:
        if not _PROM_LABEL.fullmatch(name) or name.startswith("__"):
            raise ValueError(
                f"{name[:60]!r} is not a Prometheus label name (letters, digits and _, not "
                "starting with a digit or __): these labels go on the rules"
            )
    return labels


# Labels that go on Prometheus rules (Sloth's): their names must be Prometheus's, their
# values templates it can read (an alerting rule's labels are expanded).
PromLabels = Annotated[dict[str, str], BeforeValidator(_prom_labels)]
# An alerting rule's annotations: templates Prometheus can read.
Templates = Annotated[dict[str, str], BeforeValidator(_templates)]


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):  # YAML's true is no number, though pydantic would take it as 1
        raise ValueError("expected a number, got true or false")
    return value


# A number as written (99.9 or "99.9"), never YAML's true or false.
Number = Annotated[float, BeforeValidator(_no_bool)]


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def explain(exc: ValidationError, source: str) -> ConfigError:
    """The first five problems pydantic found, each with the path of its field."""
    problems = [
        f"{_where(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()[:5]
    ]
    return ConfigError(f"{source}: {'; '.join(problems)}")
