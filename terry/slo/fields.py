"""What the Sloth and OpenSLO models share: their pydantic base, names, labels as YAML gives
them, and pydantic's ``ValidationError`` said as a ``ConfigError`` naming file and field."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from terry.errors import ConfigError

__all__ = ["NAME", "Labels", "Model", "Number", "PromLabels", "explain"]

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


def _prom_labels(value: Any) -> dict[str, str]:
    labels = _labels(value)
    for name in labels:
        if not _PROM_LABEL.fullmatch(name) or name.startswith("__"):
            raise ValueError(
                f"{name[:60]!r} is not a Prometheus label name (letters, digits and _, not "
                "starting with a digit or __): these labels go on the rules"
            )
    return labels


# Labels that go on Prometheus rules (Sloth's): their names must be Prometheus's.
PromLabels = Annotated[dict[str, str], BeforeValidator(_prom_labels)]


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
