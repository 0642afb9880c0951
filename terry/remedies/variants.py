"""Remedy variants: named parameter sets of one remedy, tried on comparable incidents and
compared by how often and how fast they verify.

A catalogue entry may declare ``variants`` (``roles/<role>/remedies.yml``): each a name, a
summary and parameter values that override the remedy's defaults (``compress-only`` keeps
every file and only gzips logs). The remedy's own parameters are the variant ``default``;
``default_variant`` names the one production gets (``default`` unless a person merged a
change naming another). These are not platform variants (``variant_of``/``platform`` in
``terry.remedies.catalogue``): those are other remedies for other hosts; these are the same
role's tasks with other values.

Which variant a new proposal gets is a rule over a small input, the same one the gate's
policy sees as ``variant`` (docs/policy.md): the variants ``offered``, the ``default``, the
``environment`` and how often each was ``tried`` on comparable incidents (same remedy, same
environment). In production it is always the default: a variant proves itself elsewhere
first. In the environments the entry lists in ``try_variants_in`` (none unless it says:
trying is opted into) the least-tried variant goes next (the default first on a tie), so
comparable incidents alternate; elsewhere the default. The choice travels with the
proposal as the parameter ``terry_variant`` (in ``proposals show``, the commit and the pull
request) next to the values it set.

``terry remedies compare`` reads finished proposals per variant (runs, verified rate,
median time to verified); ``--propose`` commits the winner as ``default_variant`` on a
branch for a person to merge, only with enough runs and a clear lead (``WinnerRule``).
"""

from __future__ import annotations

import io
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from terry.environments import PRODUCTION, UNKNOWN, environment_name, environment_names
from terry.errors import ConfigError
from terry.inventory.hosts import most_sensitive
from terry.remedies.params import ParamError, ParamSpec

if TYPE_CHECKING:
    from terry.gitops.repo import Repo
    from terry.store import Store

__all__ = [
    "DEFAULT",
    "VARIANT_PARAM",
    "Comparison",
    "Proposed",
    "Variant",
    "VariantChoice",
    "VariantStats",
    "WinnerRule",
    "choose_variant",
    "compare_variants",
    "edit_default_variant",
    "gate_view",
    "judge",
    "parse_trials",
    "parse_variants",
    "propose_winner",
    "same_variant",
    "tried_variants",
    "variant_input",
    "variant_of_params",
    "variant_said",
    "with_variant",
]

DEFAULT = "default"  # the remedy's own parameters
VARIANT_PARAM = "terry_variant"  # the proposal parameter naming the variant it runs
# Proposals that reached an end after apply (terry.store.runs.FINISHED).
_FINISHED = ("verified", "failed", "rolled_back", "escalated")


@dataclass(frozen=True)
class Variant:
    name: str
    summary: str
    params: dict[str, Any]  # checked values overriding the remedy's defaults


class Remedy(Protocol):
    """What this module reads of a catalogue entry (``terry.remedies.catalogue.Remedy``,
    which imports this module to parse its variants)."""

    @property
    def name(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def variants(self) -> tuple[Variant, ...]: ...
    @property
    def default_variant(self) -> str: ...
    @property
    def try_variants_in(self) -> tuple[str, ...]: ...


# -- the catalogue entry -------------------------------------------------------------------


def parse_trials(raw: Any, where: str) -> tuple[str, ...]:
    """``try_variants_in``: the environments where variants take turns (never production)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(e, str) and e for e in raw):
        raise ConfigError(f"{where}: try_variants_in must list environments (e.g. [staging])")
    for name in raw:
        if environment_name(name) in (PRODUCTION, UNKNOWN):  # no environment counts as one
            raise ConfigError(
                f"{where}: try_variants_in: {name!r}: production always runs the default "
                "(so does a host of no known environment: it counts as production)"
            )
    return tuple(environment_names(raw))


def parse_variants(
    raw: Any, default: Any, specs: Sequence[ParamSpec], where: str
) -> tuple[tuple[Variant, ...], str]:
    """The entry's ``variants`` (a mapping name -> {summary, params}) with ``default``
    prepended, and the name of its ``default_variant``. A variant sets only parameters the
    remedy declares that no label or annotation fills (those describe the incident, not the
    method), each value checked like a default."""
    if raw is None:
        if default not in (None, DEFAULT):
            raise ConfigError(f"{where}: default_variant {default!r} but no variants declared")
        return (), DEFAULT
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: variants must map names to {{summary, params}}")
    by_name = {s.name: s for s in specs}
    found = [Variant(DEFAULT, "the remedy's own parameters", {})]
    for name, body in raw.items():
        at = f"{where}: variants.{name}"
        if not isinstance(name, str) or not name.replace("-", "").isalnum() or name == DEFAULT:
            raise ConfigError(f"{at}: a variant name is a slug like compress-only (not default)")
        if not isinstance(body, dict) or not isinstance(body.get("params"), dict):
            raise ConfigError(f"{at}: expected {{summary, params}}")
        values: dict[str, Any] = {}
        for key, value in body["params"].items():
            spec = by_name.get(key)
            if spec is None:
                raise ConfigError(f"{at}: params.{key}: the remedy declares no such parameter")
            if spec.source is not None:
                raise ConfigError(f"{at}: params.{key} comes from {spec.source}, not a variant")
            try:
                values[key] = spec.check(value)
            except ParamError as exc:
                raise ConfigError(f"{at}: params.{key}: {exc}") from exc
        found.append(Variant(name, str(body.get("summary", name)), values))
    chosen = DEFAULT if default is None else default
    if chosen not in {v.name for v in found}:
        raise ConfigError(f"{where}: default_variant {chosen!r} is not one of its variants")
    return tuple(found), chosen


def edit_default_variant(text: str, remedy: str, winner: str) -> str:
    """``remedies.yml`` with ``remedy``'s ``default_variant`` set to ``winner``, comments and
    layout kept (the commit ``terry remedies compare --propose`` makes)."""
    from terry.gitops.yaml_edit import round_trip, split_head

    head, body = split_head(text)
    yaml = round_trip(body)
    document = yaml.load(body)
    entries = document.get("remedies") if isinstance(document, dict) else None
    entry = next((e for e in entries or [] if e.get("name") == remedy), None)
    if entry is None:
        raise ConfigError(f"no remedy {remedy!r} in this file")
    if winner == DEFAULT and "default_variant" in entry:
        del entry["default_variant"]
    elif winner != DEFAULT:
        if "default_variant" in entry:
            entry["default_variant"] = winner
        else:  # next to its variants, where a reader looks for it
            entry.insert(list(entry).index("variants"), "default_variant", winner)
    out = io.StringIO()
    yaml.dump(document, out)
    return head + out.getvalue()


# -- the choice ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantChoice:
    name: str
    params: dict[str, Any]
    reason: str


def variant_input(remedy: Remedy, environment: str, tried: Mapping[str, int]) -> dict[str, Any]:
    """What the choice is given (and the gate's policy sees as ``variant``, with ``chosen``)."""
    return {
        "remedy": remedy.name,
        "environment": environment,
        "offered": [v.name for v in remedy.variants],
        "default": remedy.default_variant,
        "try_in": list(remedy.try_variants_in),
        "tried": {v.name: int(tried.get(v.name, 0)) for v in remedy.variants},
    }


def choose_variant(remedy: Remedy, view: Mapping[str, Any]) -> VariantChoice:
    """The variant for a new proposal, from ``variant_input``'s view: the default in
    production and wherever the entry does not try variants (``try_variants_in``);
    elsewhere the least-tried offered variant, the default first on a tie."""
    by_name = {v.name: v for v in remedy.variants}
    default = by_name[remedy.default_variant]
    environment = view["environment"]
    if environment == PRODUCTION:
        return VariantChoice(default.name, default.params, "production always runs the default")
    if environment not in view["try_in"]:
        return VariantChoice(
            default.name, default.params, f"variants are not tried in {environment}"
        )
    tried = view["tried"]
    order = [default.name] + [n for n in view["offered"] if n != default.name]
    name = min(order, key=lambda n: (tried.get(n, 0), order.index(n)))
    return VariantChoice(
        name, by_name[name].params, f"least tried in {environment} ({tried.get(name, 0)} before)"
    )


def variant_of_params(params: Mapping[str, Any]) -> str:
    """The variant a proposal ran; proposals from before variants ran the remedy's own."""
    name = params.get(VARIANT_PARAM)
    return name if isinstance(name, str) and name else DEFAULT


def same_variant(params: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool] | None:
    """Which earlier proposals are the record of one with ``params``: those that ran the
    same variant, when it runs one (a trial must not borrow the default's record); None
    (every run) for a remedy that is not tried."""
    if VARIANT_PARAM not in params:
        return None
    name = variant_of_params(params)
    return lambda other: variant_of_params(other) == name


def variant_said(remedy: Remedy, params: Mapping[str, Any]) -> str:
    """The variant a proposal runs as people read it ("compress-only: Only gzip logs ..."),
    or "" when it runs the remedy's own parameters (the remedy's summary says what it does)."""
    name = variant_of_params(params)
    found = next((v for v in remedy.variants if v.name == name), None)
    if name == DEFAULT or found is None:
        return ""
    return f"{found.name}: {found.summary}"


def gate_view(remedy: Remedy | None, params: Mapping[str, Any]) -> dict[str, Any]:
    """The gate's ``variant`` input: the variant the proposal runs, the default, and those
    offered (none for a remedy without variants), so a policy may hold back a trial."""
    chosen = variant_of_params(params)
    offered = [v.name for v in remedy.variants] if remedy is not None else []
    default = remedy.default_variant if remedy is not None else DEFAULT
    return {
        "name": chosen,
        "default": default,
        "is_default": chosen == default,
        "offered": offered,
        "params": {k: params[k] for k in _set_by(remedy, chosen) if k in params},
    }


def _set_by(remedy: Remedy | None, name: str) -> list[str]:
    found = next((v for v in (remedy.variants if remedy else ()) if v.name == name), None)
    return sorted(found.params) if found else []


def tried_variants(store: Store, remedy: str, environment: str) -> dict[str, int]:
    """How many proposals of ``remedy`` ran each variant on hosts of ``environment``."""
    from sqlalchemy import select

    from terry.store.models import ProposalHostRow, ProposalRow

    hosts_there = select(ProposalHostRow.proposal_id).where(
        ProposalHostRow.environment == environment
    )
    query = select(ProposalRow.params).where(
        ProposalRow.remedy == remedy, ProposalRow.id.in_(hosts_there)
    )
    counts: dict[str, int] = {}
    with store.session() as session:
        for (params,) in session.execute(query):
            name = variant_of_params(params or {})
            counts[name] = counts.get(name, 0) + 1
    return counts


def _environment(environments: Iterable[str | None]) -> str:
    """What the hosts count as (the gate's rule); none at all, or a host of no known
    environment, counts as production."""
    found = [environment_name(e) or UNKNOWN for e in environments]
    if not found or any(e in (PRODUCTION, UNKNOWN) for e in found):
        return PRODUCTION
    return most_sensitive(found)


def with_variant(
    store: Store, remedy: Remedy, environments: Iterable[str | None], params: Mapping[str, Any]
) -> dict[str, Any]:
    """``params`` with the chosen variant's values and its name (``terry_variant``)."""
    if not remedy.variants:
        return dict(params)
    environment = _environment(environments)
    trying = environment in remedy.try_variants_in
    if not trying and remedy.default_variant == DEFAULT:
        return dict(params)  # the remedy's own parameters, as before variants existed
    tried = tried_variants(store, remedy.name, environment) if trying else {}
    chosen = choose_variant(remedy, variant_input(remedy, environment, tried))
    return {**params, **chosen.params, VARIANT_PARAM: chosen.name}


# -- the comparison -------------------------------------------------------------------------


_EPSILON = 1e-9  # rates are fractions of small counts: closer than this is equal


@dataclass(frozen=True)
class WinnerRule:
    """When a variant is proposed as the default: every variant compared has at least
    ``min_runs`` finished runs, and the best leads the next by at least ``min_lead`` in
    verified rate, or (rates within ``min_lead``) verifies at least ``faster`` quicker
    (median time to verified at most ``1 - faster`` of the next one's)."""

    min_runs: int = 5
    min_lead: float = 0.10
    faster: float = 0.20


@dataclass(frozen=True)
class VariantStats:
    name: str
    summary: str
    default: bool
    runs: int
    verified: int
    median_seconds_to_verified: float | None

    @property
    def verified_rate(self) -> float | None:
        return round(self.verified / self.runs, 4) if self.runs else None

    def as_json(self) -> dict[str, Any]:
        return {
            "variant": self.name,
            "summary": self.summary,
            "default": self.default,
            "runs": self.runs,
            "verified": self.verified,
            "verified_rate": self.verified_rate,
            "median_seconds_to_verified": (
                None
                if self.median_seconds_to_verified is None
                else round(self.median_seconds_to_verified, 1)
            ),
        }


@dataclass(frozen=True)
class Comparison:
    remedy: str
    source: str  # the catalogue file
    environment: str | None  # the one asked for; None: where the variants are tried
    variants: tuple[VariantStats, ...]
    winner: str | None  # a variant that should become the default, when one clearly leads
    why: str
    environments: tuple[str, ...] = ()  # those counted; none named: every one but production

    @property
    def where(self) -> str:
        """The environments counted, as a person reads them."""
        return ", ".join(self.environments) or "outside production"

    def as_json(self) -> dict[str, Any]:
        return {
            "remedy": self.remedy,
            "source": self.source,
            "environment": self.environment,
            "environments": list(self.environments) or None,
            "variants": [v.as_json() for v in self.variants],
            "winner": self.winner,
            "why": self.why,
        }


def _ranked(stats: Sequence[VariantStats]) -> list[VariantStats]:
    return sorted(
        stats,
        key=lambda s: (-(s.verified_rate or 0.0), s.median_seconds_to_verified or float("inf")),
    )


def judge(stats: Sequence[VariantStats], rule: WinnerRule) -> tuple[str | None, str]:
    """The variant that should become the default by ``rule``, or None; and why."""
    short = [s.name for s in stats if s.runs < rule.min_runs]
    if short:
        return None, f"not enough runs (under {rule.min_runs}): {', '.join(short)}"
    best, second = _ranked(stats)[:2]
    lead = (best.verified_rate or 0.0) - (second.verified_rate or 0.0)
    # 0.9 - 0.8 is 0.0999...: still a 10-point lead; a tie is never one, whatever the rule
    if lead > _EPSILON and lead >= rule.min_lead - _EPSILON:
        why = (
            f"{best.name} verifies {lead * 100:.0f} points more often than {second.name} "
            f"({best.verified_rate:.0%} against {second.verified_rate or 0:.0%})"
        )
    elif (
        best.median_seconds_to_verified is not None
        and second.median_seconds_to_verified is not None
        and best.median_seconds_to_verified < second.median_seconds_to_verified
        and best.median_seconds_to_verified <= (1 - rule.faster) * second.median_seconds_to_verified
    ):
        why = (
            f"{best.name} verifies as often and faster than {second.name} (median "
            f"{best.median_seconds_to_verified:.0f}s vs {second.median_seconds_to_verified:.0f}s)"
        )
    else:
        return None, f"no clear lead between {best.name} and {second.name}"
    if best.default:
        return None, f"the default, {best.name}, leads: nothing to change ({why})"
    return best.name, why


def compare_variants(
    store: Store,
    remedy: Remedy,
    *,
    environment: str | None = None,
    rule: WinnerRule | None = None,
) -> Comparison:
    """Finished proposals of ``remedy`` per variant, and the winner by ``rule``: in
    ``environment``, or by default where the entry tries its variants (``try_variants_in``;
    every environment but production when it names none). An environment where the
    variants are not tried only ever runs the default, and would weigh on its side.

    The time to verified is from the start of the proposal's last apply to its verification:
    the wait for a person's review, or a merge queue, says nothing of the variant."""
    from sqlalchemy import select

    from terry.store.models import AuditRow, ProposalRow

    query = select(
        ProposalRow.id, ProposalRow.params, ProposalRow.state, ProposalRow.environment
    ).where(ProposalRow.remedy == remedy.name, ProposalRow.state.in_(_FINISHED))
    pooled = set(remedy.try_variants_in)
    environment = environment_name(environment)
    rows: dict[str, list[tuple[int, str]]] = {}
    with store.session() as session:
        for pid, params, state, stored in session.execute(query):
            env = environment_name(stored)
            if environment is not None:
                if env != environment:
                    continue
            elif _environment([env]) == PRODUCTION or (pooled and env not in pooled):
                continue  # unknown counts as production, as when a variant is chosen
            rows.setdefault(variant_of_params(params or {}), []).append((pid, state))
        verified = [pid for mine in rows.values() for pid, state in mine if state == "verified"]
        steps = session.execute(
            select(AuditRow.entity_id, AuditRow.to_state, AuditRow.at)
            .where(
                AuditRow.entity == "proposal",
                AuditRow.entity_id.in_(verified),
                AuditRow.to_state.in_(("applying", "verified")),
            )
            .order_by(AuditRow.at, AuditRow.id)
        ).all()
    took = _apply_to_verified(steps)
    stats = []
    for variant in remedy.variants:
        mine = rows.get(variant.name, [])
        times = [took[pid] for pid, state in mine if state == "verified" and pid in took]
        stats.append(
            VariantStats(
                name=variant.name,
                summary=variant.summary,
                default=variant.name == remedy.default_variant,
                runs=len(mine),
                verified=sum(1 for _pid, state in mine if state == "verified"),
                median_seconds_to_verified=statistics.median(times) if times else None,
            )
        )
    winner, why = judge(stats, rule or WinnerRule())
    counted = (environment,) if environment is not None else tuple(sorted(pooled))
    return Comparison(remedy.name, remedy.source, environment, tuple(stats), winner, why, counted)


def _apply_to_verified(steps: Iterable[tuple[int, str, datetime]]) -> dict[int, float]:
    """Per proposal, seconds from the start of its last apply (``applying``) to the
    ``verified`` after it, from its audit rows in time order."""
    started: dict[int, datetime] = {}
    took: dict[int, float] = {}
    for pid, state, at in steps:
        if state == "applying":
            started[pid] = at
        elif pid in started:
            took[pid] = (at - started[pid]).total_seconds()
    return took


# -- proposing the winner -------------------------------------------------------------------


@dataclass(frozen=True)
class Proposed:
    """The commit making a comparison's winner the default, on its branch for review."""

    branch: str
    commit: str
    already_proposed: bool = False
    pull_url: str | None = None
    pull_error: str | None = None
    pull_exit: int | None = None  # the refusal's exit code (7 git, 10 the forge)

    def as_json(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "commit": self.commit,
            "already_proposed": self.already_proposed,
            "pull_url": self.pull_url,
            "pull_error": self.pull_error,
        }


def _message(comparison: Comparison) -> str:
    lines = [
        f"remedies: {comparison.remedy} runs {comparison.winner} by default",
        "",
        f"Why: {comparison.why} ({comparison.where}).",
        "",
    ]
    for v in comparison.variants:
        rate = "-" if v.verified_rate is None else f"{v.verified_rate:.0%}"
        median = v.median_seconds_to_verified
        lines.append(
            f"- {v.name}{' (default until now)' if v.default else ''}: {v.runs} runs, "
            f"{rate} verified, median {'-' if median is None else f'{median:.0f}s'} to verified"
        )
    lines += ["", f"Terry-Remedy: {comparison.remedy}", f"Terry-Variant: {comparison.winner}"]
    return "\n".join(lines)


def propose_winner(
    repo: Repo,
    comparison: Comparison,
    *,
    base: str,
    open_change: Callable[..., str | None],
) -> Proposed | None:
    """Commit ``default_variant: <winner>`` in the remedy's catalogue file on a branch of its
    own (proposing the same winner again finds it) and open it for review; merging it is a
    person's decision. None when the comparison has no winner."""
    from terry.errors import TerryError

    if comparison.winner is None:
        return None
    branch = repo.check_branch_name(f"terry/variant-{comparison.remedy}-{comparison.winner}")
    message = _message(comparison)
    if repo.ref_exists(branch):
        proposed = Proposed(branch, repo.head(branch), already_proposed=True)
    else:
        text = repo.read_text(base, comparison.source)
        if text is None:
            raise ConfigError(f"{comparison.source} is not on main")
        edited = edit_default_variant(text, comparison.remedy, comparison.winner)
        commit = repo.commit_files(
            branch=branch, files={comparison.source: edited}, message=message, base=base
        )
        proposed = Proposed(branch, commit)
    try:
        url = open_change(
            branch,
            title=message.splitlines()[0],
            body=message.split("\n", 2)[2],
            labels=("terry", "remedies"),
        )
    except TerryError as exc:
        return replace(proposed, pull_error=str(exc), pull_exit=exc.exit_code)
    return replace(proposed, pull_url=url)
