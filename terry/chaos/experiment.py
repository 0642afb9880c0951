"""Experiment files: Chaos Toolkit experiments (JSON or YAML) under ``experiments/`` on main.

Terry reads three things from one, beyond what chaostoolkit-lib validates: the fault its
method injects (an action of ``terry.chaos.actions.inject_fault``), the rollback that
removes it (``remove_fault`` with the same fault: an experiment without one is refused), and
its ``terry`` extension: which hosts it may target and how long Terry may take::

    extensions:
      - name: terry
        target: {environments: [staging], labels: {service: web}, count: 1}
        resolve_within: 120     # seconds Terry has to detect, fix and verify

The fault's arguments are read as chaostoolkit-lib passes them to the action: ``${key}``
placeholders filled from the experiment's ``configuration`` (never its secrets).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from terry.chaos.faults import Fault, check_params, fault_named
from terry.chaos.targets import Selector
from terry.environments import environment_names
from terry.errors import ConfigError, InputError, NotFound
from terry.jsonable import strings_in

__all__ = ["ACTIONS", "Experiment", "find_experiment", "list_experiments", "parse_experiment"]

ACTIONS = "terry.chaos.actions"
_SUFFIXES = (".json", ".yaml", ".yml")


@dataclass(frozen=True)
class Experiment:
    name: str  # the file name under experiments/
    title: str
    fault: Fault
    params: dict[str, Any]
    selector: Selector
    resolve_within: float
    raw: dict[str, Any]  # what chaostoolkit-lib runs


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise InputError(f"{path.name}: not readable as {path.suffix[1:]}: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path.name}: an experiment is a mapping")
    return data


def _shape(name: str, data: dict[str, Any]) -> None:
    """What chaostoolkit-lib takes for granted, checked first, so that a wrong shape is an
    error naming the field rather than the library's TypeError."""
    if not isinstance(data.get("extensions") or [], list):
        raise InputError(f"{name}: extensions must be a list of mappings, each with a name")
    for part in ("method", "rollbacks"):
        activities = data.get(part) or []
        if not isinstance(activities, list):
            raise InputError(f"{name}: {part} must be a list of activities")
        for n, activity in enumerate(activities):
            provider = activity.get("provider") if isinstance(activity, dict) else None
            arguments = provider.get("arguments") if isinstance(provider, dict) else None
            if arguments is not None and not isinstance(arguments, dict):
                raise InputError(
                    f"{name}: {part}[{n}].provider.arguments must be a mapping of names to values"
                )


def _calls(activities: Any, func: str) -> list[dict[str, Any]]:
    found = []
    for activity in activities or ():
        provider = activity.get("provider") if isinstance(activity, dict) else None
        if (
            isinstance(provider, dict)
            and provider.get("type") == "python"
            and provider.get("module") == ACTIONS
            and provider.get("func") == func
        ):
            found.append(dict(provider.get("arguments") or {}))
    return found


def _configuration(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """The experiment's ``configuration`` as Chaos Toolkit resolves it (chaostoolkit-lib's
    ``load_configuration``: literal values, and ``{type: env, key: ...}`` read from this
    environment, with its ``default``). Its secrets are not read: a fault's parameters are
    recorded and shown, so they never come from a secret."""
    raw = data.get("configuration") or {}
    if not isinstance(raw, dict):
        raise InputError(f"{name}: configuration must be a mapping of names to values")
    from chaoslib.configuration import load_configuration

    try:
        return dict(load_configuration(raw))
    except Exception as exc:  # InvalidExperiment, and a malformed entry's KeyError/ValueError
        raise InputError(f"{name}: configuration: {exc}") from exc


_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")


def _substituted(name: str, arguments: dict[str, Any], configuration: dict[str, Any]) -> Any:
    """``arguments`` with their ``${key}`` placeholders filled from ``configuration``, as
    chaostoolkit-lib fills them when it calls the action (a value that is one placeholder
    keeps the configuration value's type). A placeholder left unfilled names no
    configuration value (a secret, or a typo) and is refused."""
    from chaoslib import substitute

    filled = substitute(arguments, configuration, {})
    for value in strings_in(filled):
        if found := _PLACEHOLDER.search(value):
            raise InputError(
                f"{name}: {found.group(0)} in the fault's arguments names no configuration "
                f"value (known: {', '.join(sorted(configuration)) or 'none'}); a fault's "
                "parameters never come from secrets"
            )
    return filled


def _selector(ext: dict[str, Any], name: str) -> Selector:
    target = ext.get("target") or {}
    if not isinstance(target, dict):
        raise InputError(f"{name}: extensions.terry.target must be a mapping")
    unknown = set(target) - {"hosts", "environments", "groups", "labels", "count"}
    if unknown:
        raise InputError(f"{name}: unknown target key {sorted(unknown)[0]!r}")
    count = target.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise InputError(f"{name}: target count must be a whole number of hosts, at least 1")

    def strings(key: str) -> tuple[str, ...]:
        value = target.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f"{name}: target {key} must be a list of names")
        return tuple(value)

    labels = target.get("labels") or {}
    if not isinstance(labels, dict):
        raise InputError(f"{name}: target labels must be a mapping")
    return Selector(
        hosts=strings("hosts"),
        environments=tuple(environment_names(strings("environments"))),
        groups=strings("groups"),
        labels={str(k): str(v) for k, v in labels.items()},
        count=count,
    )


def parse_experiment(name: str, data: dict[str, Any], *, library: bool = True) -> Experiment:
    """The experiment ``data`` as Terry runs it. chaostoolkit-lib validates the format
    (``library``), then Terry checks its fault, its rollback and its extension; the first
    problem is an InputError."""
    _shape(name, data)
    if library:
        from chaoslib.exceptions import ChaosException
        from chaoslib.experiment import ensure_experiment_is_valid

        try:
            ensure_experiment_is_valid(data)
        except ChaosException as exc:
            raise InputError(f"{name}: {exc}") from exc
        except Exception as exc:  # the library tripping over a shape it did not expect
            raise InputError(
                f"{name}: not a Chaos Toolkit experiment chaostoolkit-lib can read "
                f"({type(exc).__name__}: {str(exc)[:200]})"
            ) from exc
    configuration = _configuration(name, data)
    injects = [
        _substituted(name, a, configuration) for a in _calls(data.get("method"), "inject_fault")
    ]
    if len(injects) != 1:
        raise InputError(
            f"{name}: the method must inject exactly one fault ({ACTIONS}.inject_fault)"
        )
    if _calls(data.get("rollbacks"), "inject_fault"):
        raise InputError(f"{name}: a rollback may not inject a fault, only remove it")
    injected = {
        a.get("name")
        for a in data.get("method") or ()
        if isinstance(a, dict) and _calls([a], "inject_fault")
    }
    if any(isinstance(a, dict) and a.get("ref") in injected for a in data.get("method") or ()):
        raise InputError(f"{name}: the fault is injected once: no ref may run it again")
    args = dict(injects[0])
    fault = fault_named(str(args.pop("fault", "")))
    raw_params = args.pop("params", None) or {}
    if not isinstance(raw_params, dict):
        raise InputError(f"{name}: inject_fault's params must be a mapping of names to values")
    params = check_params(fault, dict(raw_params))
    if args:
        raise InputError(f"{name}: inject_fault takes fault and params, not {sorted(args)[0]!r}")
    removes = [
        a
        for a in _calls(data.get("rollbacks"), "remove_fault")
        if _substituted(name, a, configuration).get("fault") == fault
    ]
    if not removes:
        raise InputError(
            f"{name}: a rollback must remove the fault ({ACTIONS}.remove_fault, fault: {fault})"
        )
    terry = [
        e for e in data.get("extensions") or () if isinstance(e, dict) and e.get("name") == "terry"
    ]
    if len(terry) > 1:
        raise InputError(f"{name}: one extension named terry, not {len(terry)}")
    ext = terry[0] if terry else {}
    if unknown := sorted(set(ext) - {"name", "resolve_within", "target"}):
        raise InputError(
            f"{name}: unknown key {unknown[0]!r} in extensions.terry "
            "(known: resolve_within, target)"
        )
    within = ext.get("resolve_within", 300)
    if not isinstance(within, int | float) or isinstance(within, bool) or not 1 <= within <= 86_400:
        raise InputError(f"{name}: resolve_within must be seconds between 1 and 86400")
    return Experiment(
        name=name,
        title=str(data.get("title", name))[:300],
        fault=fault,
        params=params,
        selector=_selector(ext, name),
        resolve_within=float(within),
        raw=data,
    )


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in _SUFFIXES and p.is_file())


def list_experiments(directory: Path) -> list[tuple[str, Experiment | None, str]]:
    """Every experiment file: (name, the experiment or None, the problem when invalid)."""
    out: list[tuple[str, Experiment | None, str]] = []
    for path in _files(directory):
        try:
            out.append((path.name, parse_experiment(path.name, _load(path)), ""))
        except InputError as exc:
            out.append((path.name, None, str(exc)))
    return out


def find_experiment(directory: Path, name: str, *, files: bool = True) -> Experiment:
    """The experiment ``name`` (a file name with or without its suffix, or, with ``files``,
    a path to a file outside the repository, for validating one before it is committed;
    a run takes only what is on main: breaking hosts goes through review like any change)."""
    given = Path(name)
    if given.suffix in _SUFFIXES and given.is_file() and given.parent != Path("."):
        if not files:
            raise InputError(
                f"{name}: a run takes an experiment on main by name (commit it under "
                f"{directory.name}/ first; 'terry chaos validate' checks a file before that)"
            )
        return parse_experiment(given.name, _load(given))
    for path in _files(directory):
        if name in (path.name, path.stem):
            return parse_experiment(path.name, _load(path))
    known = ", ".join(p.name for p in _files(directory)) or f"none in {directory.name}/"
    if not directory.is_dir():
        raise ConfigError(f"no {directory.name}/ directory on main (docs/chaos.md)")
    raise NotFound(f"no experiment {name!r} (known: {known})")
