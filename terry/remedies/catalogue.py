"""The remedy catalogue: data files next to the roles they use (``roles/<role>/remedies.yml``).

An operator adds a remedy by adding YAML, never Python. Each remedy names what it matches,
the role task files for apply, verify and rollback, its parameters, and its base risk.

A remedy may have platform variants: an entry with ``variant_of: <remedy>`` and
``platform: <name>`` (``aws``...) is what diagnosis proposes instead of that remedy for a
host on that platform (``terry.inventory.platform``). A variant matches what its remedy
matches, takes its remedy's parameters (its own added or overriding), and is never below
medium risk nor below its remedy's: it reaches past the host (a cloud API), so a person
looks at it until its record proves it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from terry import yaml_unique
from terry.errors import ConfigError
from terry.remedies.manifests import ManifestEdit, parse_path
from terry.remedies.params import ParamSpec, ParamType
from terry.remedies.variants import DEFAULT, Variant, parse_trials, parse_variants

# libyaml's parser when present: ten times faster than the pure-Python one on the catalogue.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

__all__ = [
    "Catalogue",
    "Match",
    "PrometheusVerify",
    "Remedy",
    "Risk",
    "load_catalogue",
    "modules_of_roles",
]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_TASKS_FROM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return ("low", "medium", "high").index(self.value)


@dataclass(frozen=True)
class Match:
    alertnames: tuple[str, ...]
    labels: tuple[tuple[str, re.Pattern[str]], ...] = ()

    def matches(self, alertname: str, labels: dict[str, str]) -> bool:
        if alertname not in self.alertnames:
            return False
        return all(
            pattern.fullmatch(labels.get(name, "")) is not None for name, pattern in self.labels
        )


@dataclass(frozen=True)
class PrometheusVerify:
    """A PromQL query whose answer decides verification; ``{param}`` placeholders are filled
    with checked values. With ``below``/``above`` every sample must be on that side of the
    bound; without, any non-empty finite answer counts as healthy."""

    query: str
    below: str | None = None
    above: str | None = None


@dataclass(frozen=True)
class Remedy:
    name: str
    summary: str
    role: str
    risk: Risk
    match: Match
    params: tuple[ParamSpec, ...]
    apply: str
    verify: str
    rollback: str
    verify_summary: str
    rollback_summary: str
    prometheus_verify: PrometheusVerify | None
    modules: tuple[str, ...]
    source: str  # the file it came from, relative to the repository
    # Set for remedies applied by Argo CD: the manifest change (apply/verify/rollback unused).
    manifest: ManifestEdit | None = None
    # How a proposal of this remedy is verified: named checks, in order (terry.steps.verify:
    # "applier" asks the applier, "prometheus" runs prometheus_verify when configured,
    # "drift-scan" scans the hosts, "inventory" reads the inventory on main).
    verified_by: tuple[str, ...] = ("applier", "prometheus")
    # Whether the applier rolls it back; otherwise a person does, as rollback_summary says.
    rolls_back: bool = True
    # Verified, the incident is resolved with these words (None: its alert resolving it).
    resolves: str | None = None
    # Its verify tasks may run in the apply's own ansible run, right after the fix (they
    # need nothing to settle between the two): one ansible start fewer per fix.
    verify_in_apply_run: bool = False
    # Tasks of the role that only read (the same in check mode and out of it), run before
    # ``apply`` in its play: a held wave (terry.appliers.hold) runs them before it waits for
    # the canary's verdict, so the change starts the moment the word comes.
    look: str | None = None
    # A platform variant: proposed instead of ``variant_of`` for hosts on ``platform``.
    variant_of: str | None = None
    platform: str | None = None
    # Parameter variants (terry.remedies.variants): ``default`` (its own parameters) first,
    # then the declared ones; none when it declares none. ``default_variant``: production's.
    variants: tuple[Variant, ...] = ()
    default_variant: str = DEFAULT
    try_variants_in: tuple[str, ...] = ()  # environments where variants take turns

    @property
    def applier(self) -> str:
        return "argocd" if self.manifest is not None else "ansible"

    @classmethod
    def of_desired_state(
        cls,
        name: str,
        *,
        summary: str,
        role: str,
        alertname: str,
        modules: tuple[str, ...],
        verify_summary: str,
        rollback_summary: str,
        source: str,
        verified_by: tuple[str, ...],
        resolves: str,
    ) -> Remedy:
        """A remedy that is no catalogue entry but the desired state itself (a drift fix,
        an inventory edit): medium risk, no parameters, verified by ``verified_by``, and rolled
        back by a person, never automatically (the desired state is the reference)."""
        return cls(
            name=name,
            summary=summary,
            role=role,
            risk=Risk.MEDIUM,
            match=Match((alertname,)),
            params=(),
            apply="",
            verify="",
            rollback="",
            verify_summary=verify_summary,
            rollback_summary=rollback_summary,
            prometheus_verify=None,
            modules=modules,
            source=source,
            verified_by=verified_by,
            rolls_back=False,
            resolves=resolves,
        )


@dataclass(frozen=True)
class Catalogue:
    remedies: tuple[Remedy, ...]

    def get(self, name: str) -> Remedy | None:
        return next((r for r in self.remedies if r.name == name), None)

    def match(self, alertname: str, labels: dict[str, str]) -> Remedy | None:
        """The most specific remedy (most label conditions) that matches, if any (platform
        variants are not candidates: ``for_platform`` swaps one in for its remedy)."""
        candidates = [
            r for r in self.remedies if r.variant_of is None and r.match.matches(alertname, labels)
        ]
        if not candidates:
            return None
        return max(candidates, key=lambda r: (len(r.match.labels), -self.remedies.index(r)))

    def for_platform(self, remedy: Remedy, platform: str | None) -> Remedy:
        """``remedy``'s variant for ``platform`` when the catalogue has one, else ``remedy``."""
        if platform is None:
            return remedy
        return next(
            (r for r in self.remedies if r.variant_of == remedy.name and r.platform == platform),
            remedy,
        )


def _task_keywords() -> frozenset[str]:
    from ansible.playbook.task import Task

    return frozenset(Task.fattributes) | {
        "block",
        "rescue",
        "always",
        "local_action",
        "args",
        "listen",
    }


def _modules_in(tasks: Any, role_dir: Path, keywords: frozenset[str], seen: set[Path]) -> set[str]:
    found: set[str] = set()
    if not isinstance(tasks, list):
        return found
    for task in tasks:
        if not isinstance(task, dict):
            continue
        for section in ("block", "rescue", "always"):
            found |= _modules_in(task.get(section), role_dir, keywords, seen)
        if "block" in task:
            continue
        actions = [k for k in task if k not in keywords and not k.startswith("with_")]
        for action in actions:
            found.add(action if "." in action else f"ansible.builtin.{action}")
            short = action.rsplit(".", 1)[-1]
            target = task[action]
            if short in ("include_tasks", "import_tasks"):
                name = target.get("file") if isinstance(target, dict) else target
                if isinstance(name, str) and "{{" not in name:
                    found |= _modules_in_file(role_dir / "tasks" / name, role_dir, keywords, seen)
            elif short in ("include_role", "import_role") and isinstance(target, dict):
                other, tasks_from = target.get("name"), target.get("tasks_from", "main")
                if isinstance(other, str) and "{{" not in other and "{{" not in str(tasks_from):
                    other_dir = role_dir.parent / other
                    found |= _modules_in_file(
                        other_dir / "tasks" / f"{tasks_from}.yml", other_dir, keywords, seen
                    )
    return found


def _modules_in_file(
    path: Path, role_dir: Path, keywords: frozenset[str], seen: set[Path]
) -> set[str]:
    if path in seen or not path.is_file():
        return set()
    seen.add(path)
    try:
        tasks = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return _modules_in(tasks, role_dir, keywords, seen)


def _param(name: str, raw: Any, where: str) -> ParamSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: params.{name}: expected a mapping")
    try:
        kind = ParamType(raw.get("type", "string"))
    except ValueError as exc:
        raise ConfigError(f"{where}: params.{name}: unknown type {raw.get('type')!r}") from exc
    source = raw.get("from")
    if source is not None and not re.fullmatch(
        r"(label|annotation):[A-Za-z_][A-Za-z0-9_]*", source
    ):
        raise ConfigError(f"{where}: params.{name}.from must be label:NAME or annotation:NAME")
    spec = ParamSpec(
        name=name,
        type=kind,
        source=source,
        default=raw.get("default"),
        required=bool(raw.get("required", False)),
        within=tuple(raw.get("within", ())),
        values=tuple(str(v) for v in raw.get("values", ())),
        min=raw.get("min"),
        max=raw.get("max"),
    )
    if spec.default is not None:
        try:
            spec.check(spec.default)
        except ValueError as exc:
            raise ConfigError(f"{where}: params.{name}: default is invalid: {exc}") from exc
    return spec


def _prometheus(raw: Any, where: str) -> PrometheusVerify | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return PrometheusVerify(query=raw)
    if isinstance(raw, dict) and isinstance(raw.get("query"), str):
        below, above = raw.get("below"), raw.get("above")
        return PrometheusVerify(
            query=raw["query"],
            below=None if below is None else str(below),
            above=None if above is None else str(above),
        )
    raise ConfigError(f"{where}: prometheus_verify must be a query or {{query, below|above}}")


# What a manifest remedy "runs", for the gate's module allow-list.
ARGOCD_MODULE = "argocd.sync"


def _manifest(raw: Any, where: str, params: tuple[ParamSpec, ...]) -> ManifestEdit:
    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
        raise ConfigError(f"{where}: manifest needs kind (e.g. Deployment) and set")
    sets = raw.get("set")
    if not isinstance(sets, dict) or not sets:
        raise ConfigError(f"{where}: manifest.set must map field paths to values")
    try:
        edit = ManifestEdit(
            kind=raw["kind"], sets=tuple((parse_path(str(k)), v) for k, v in sets.items())
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: manifest.set: {exc}") from exc
    for path, value in edit.sets:
        if isinstance(value, str) and "{" in value and not re.fullmatch(r"\{\w+\}", value):
            raise ConfigError(
                f"{where}: manifest.set.{path.text}: a value is a literal or {{param}}"
            )
    if unknown := edit.params_used - {p.name for p in params}:
        raise ConfigError(f"{where}: manifest uses undeclared params {', '.join(sorted(unknown))}")
    return edit


def _remedy(raw: Any, role_dir: Path, where: str, keywords: frozenset[str]) -> Remedy:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: each remedy must be a mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not _SLUG.fullmatch(name):
        raise ConfigError(f"{where}: name {name!r} must be a slug like disk-usage-high")
    where = f"{where}: {name}"
    variant_of, platform = raw.get("variant_of"), raw.get("platform")
    if (variant_of is None) != (platform is None):
        raise ConfigError(f"{where}: a platform variant names both variant_of and platform")
    if variant_of is not None and not (
        isinstance(variant_of, str)
        and _SLUG.fullmatch(variant_of)
        and isinstance(platform, str)
        and _SLUG.fullmatch(platform)
    ):
        raise ConfigError(f"{where}: variant_of and platform must be slugs (aws, disk-usage-high)")
    if variant_of is not None and "match" in raw:
        raise ConfigError(f"{where}: a platform variant matches what {variant_of} matches")
    match = raw.get("match") or {}
    alertnames = match.get("alertname", [])
    if isinstance(alertnames, str):
        alertnames = [alertnames]
    if not alertnames and variant_of is None:
        raise ConfigError(f"{where}: match.alertname is required")
    try:
        label_rules = tuple(
            (str(k), re.compile(str(v))) for k, v in (match.get("labels") or {}).items()
        )
        risk = Risk(raw.get("risk", "medium"))
    except (re.error, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    params = tuple(_param(k, v, where) for k, v in (raw.get("params") or {}).items())
    common = {
        "name": name,
        "summary": str(raw.get("summary", name)),
        "role": role_dir.name,
        "risk": risk,
        "match": Match(tuple(str(a) for a in alertnames), label_rules),
        "params": params,
        "verify_summary": str(raw.get("verify_summary", "")),
        "rollback_summary": str(raw.get("rollback_summary", "")),
        "prometheus_verify": _prometheus(raw.get("prometheus_verify"), where),
        "source": f"roles/{role_dir.name}/remedies.yml",
    }
    if "manifest" in raw:
        if extra := [k for k in ("apply", "verify", "rollback", "look") if k in raw]:
            raise ConfigError(
                f"{where}: a manifest remedy is applied by Argo CD; remove {', '.join(extra)}"
            )
        edit = _manifest(raw["manifest"], where, params)
        return Remedy(
            **common,
            apply="",
            verify="",
            rollback="",
            modules=(ARGOCD_MODULE,),
            manifest=edit,
        )
    steps = {}
    for step in ("apply", "verify", "rollback", "look"):
        if step == "look" and step not in raw:
            continue
        value = raw.get(step, {"apply": "main"}.get(step))
        if not isinstance(value, str) or not _TASKS_FROM.fullmatch(value):
            raise ConfigError(f"{where}: {step} must name a task file of role {role_dir.name}")
        if not (role_dir / "tasks" / f"{value}.yml").is_file():
            raise ConfigError(f"{where}: {step}: roles/{role_dir.name}/tasks/{value}.yml missing")
        steps[step] = value
    modules: set[str] = set()
    for value in steps.values():
        modules |= _modules_in_file(role_dir / "tasks" / f"{value}.yml", role_dir, keywords, set())
    variants, default_variant = parse_variants(
        raw.get("variants"), raw.get("default_variant"), params, where
    )
    together = raw.get("verify_in_apply_run", False)
    if not isinstance(together, bool):
        raise ConfigError(f"{where}: verify_in_apply_run must be true or false")
    return Remedy(
        **common,
        apply=steps["apply"],
        verify=steps["verify"],
        rollback=steps["rollback"],
        modules=tuple(sorted(modules)),
        verify_in_apply_run=together,
        look=steps.get("look"),
        variant_of=variant_of,
        platform=platform,
        variants=variants,
        default_variant=default_variant,
        try_variants_in=parse_trials(raw.get("try_variants_in"), where),
    )


def modules_of_roles(roles_dir: Path, roles: list[str]) -> tuple[str, ...]:
    """Every module the roles' ``tasks/main.yml`` use (includes followed), for the gate."""
    keywords = _task_keywords()
    found: set[str] = set()
    for role in roles:
        role_dir = roles_dir / role
        found |= _modules_in_file(role_dir / "tasks" / "main.yml", role_dir, keywords, set())
    return tuple(sorted(found))


def load_catalogue(roles_dir: Path) -> Catalogue:
    """Every remedy under ``roles_dir``; a broken file is a ConfigError naming it."""
    keywords = _task_keywords()
    remedies: list[Remedy] = []
    for path in sorted(roles_dir.glob("*/remedies.yml")):
        where = f"roles/{path.parent.name}/remedies.yml"
        try:
            document = yaml_unique.load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
        entries = document.get("remedies") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ConfigError(f"{where}: expected a top-level 'remedies:' list")
        remedies.extend(_remedy(raw, path.parent, where, keywords) for raw in entries)
    names = [r.name for r in remedies]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(f"remedy names used twice: {', '.join(duplicates)}")
    return Catalogue(tuple(_with_base(r, remedies) for r in remedies))


def _with_base(variant: Remedy, remedies: list[Remedy]) -> Remedy:
    """A platform variant completed from its remedy (match, parameters), once checked."""
    if variant.variant_of is None:
        return variant
    where = f"{variant.source}: {variant.name}"
    base = next((r for r in remedies if r.name == variant.variant_of), None)
    if base is None or base.variant_of is not None:
        raise ConfigError(f"{where}: variant_of names no remedy: {variant.variant_of!r}")
    if variant.applier != base.applier:
        raise ConfigError(f"{where}: a variant is applied like its remedy ({base.applier})")
    twins = [
        r.name for r in remedies if (r.variant_of, r.platform) == (base.name, variant.platform)
    ]
    if len(twins) > 1:
        raise ConfigError(f"{where}: {base.name} has several {variant.platform} variants")
    floor = max(base.risk.rank, Risk.MEDIUM.rank)
    if variant.risk.rank < floor:
        raise ConfigError(
            f"{where}: a platform variant is at least medium risk and at least its remedy's "
            f"({base.risk.value}); it says {variant.risk.value}"
        )
    own = {p.name for p in variant.params}
    params = tuple(p for p in base.params if p.name not in own) + variant.params
    return replace(variant, match=base.match, params=params)
