"""``terry slo``: the error budgets of the SLOs in slos/ on main, and their Prometheus rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from terry.cli.context import open_config
from terry.cli.output import console, emit_json, err_console, output_option
from terry.config import Config
from terry.durations import format_duration, parse_duration
from terry.errors import ConfigError, InputError, NotFound, TerryError
from terry.gitops.repo import Repo
from terry.inventory.hosts import Inventory, load_inventory
from terry.slo.budget import (
    LOW_PERCENT,
    PAIRS,
    WINDOWS,
    objective_text,
    pair_warnings,
    percent_text,
)
from terry.slo.services import hosts_of, label_warnings
from terry.slo.spec import SLO, load_slos
from terry.slo.status import SLOStatus, read_status

SCHEMA = "terry.slo-status/v1"


class BudgetsUnknown(TerryError):
    """Some figures could not be read from Prometheus (exit 8, as for the other services
    Terry depends on): printed as unknown first, never as healthy."""

    exit_code = 8


@click.group("slo")
def command() -> None:
    """Error budgets: SLOs as code (slos/ on main), read from Prometheus.

    \b
      terry slo status                     objective, SLI, budget left, burn rates, state
      terry slo status --service checkout -o json
      terry slo status --period 7d         over 7 days instead of each SLO's period
      terry slo rules --out prometheus/slo-rules.yml
    SLOs are written in Sloth's prometheus/v1 spec or as OpenSLO v1 SLOs with a ratio
    metric (docs/slo.md, examples/slos/); a host serves the services its inventory label
    'service' names (terry_labels: {service: checkout}). The gate reads the same budgets:
    under 10% left freezes changes that are not fixes, exhausted allows only fixes.
    """


def _main_slos(config: Config) -> tuple[list[SLO], Inventory | None]:
    repo = Repo(config.repo, main_branch=config.main_branch)
    tree = repo.tree(repo.head())
    slos = load_slos(tree)
    try:
        inventory: Inventory | None = load_inventory(tree, config.inventory)
    except ConfigError:
        inventory = None  # the hosts column stays empty; the budgets do not depend on it
    return slos, inventory


def _chosen(slos: list[SLO], services: tuple[str, ...]) -> list[SLO]:
    if not slos:
        raise NotFound("no SLOs in slos/ on main (docs/slo.md; examples/slos/ has one per format)")
    if not services:
        return slos
    known = {s.service for s in slos}
    if missing := [s for s in services if s not in known]:
        raise NotFound(
            f"no SLO for service {', '.join(missing)} (known: {', '.join(sorted(known))})"
        )
    return [s for s in slos if s.service in services]


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _row(status: SLOStatus, inventory: Inventory | None) -> dict[str, Any]:
    slo, b = status.slo, status.budget
    return {
        "service": slo.service,
        "slo": slo.name,
        "source": slo.source,
        "format": slo.format,
        "hosts": hosts_of(slo.service, inventory) if inventory else [],
        "objective_percent": slo.objective,
        "period": format_duration(b.period_seconds),
        "period_seconds": b.period_seconds,
        "sli_percent": _round(b.sli),
        "error_ratio": _round(b.error_ratio, 8),
        "budget_minutes": _round(b.budget_minutes, 2),
        # exact: rounded, 9.9996 (low) would read 10 and 0.0004 (low) would read 0
        "budget_remaining_percent": b.remaining_percent,
        "budget_remaining_minutes": _round(b.remaining_minutes, 2),
        "burn_rates": {w: _round(r, 3) for w, r in b.burn_rates.items()},
        # the burn rate each pair pages above, for this SLO's own period
        "thresholds": {p.name: p.threshold(slo.period_seconds) for p in PAIRS},
        # pairs that cannot page well at this period and objective (docs/slo.md)
        "warnings": pair_warnings(slo.objective, slo.period_seconds),
        "burning": list(b.burning),
        "state": b.state.value,
        "error": status.error,
    }


def _figure(value: float | None, fmt: str) -> str:
    return "unknown" if value is None else fmt.format(value)


def _hosts_cell(hosts: list[str], shown: int = 3) -> str:
    """The hosts serving a service, for a table: the first few by name, then how many more
    (the JSON lists them all); "none" when no host is labelled with it."""
    if not hosts:
        return "none"
    more = len(hosts) - shown
    return ", ".join(hosts[:shown]) + (f" (+{more} more)" if more > 0 else "")


@command.command("status")
@click.option("--service", "services", multiple=True, metavar="NAME", help="Only this service.")
@click.option(
    "--period",
    metavar="DURATION",
    help=(
        "Judge every SLO over this span (e.g. 7d) instead of its own period (its spec's; "
        "30d when it names none)."
    ),
)
@output_option
@click.pass_context
def status(ctx: click.Context, services: tuple[str, ...], period: str | None, output: str) -> None:
    """Per SLO: objective, SLI over its period, budget left (% and minutes), burn rates.

    \b
    Burn rates are read over the SRE workbook's multiwindow pairs: 1h and 5m (a pair burns
    above 14.4x the budget), 6h and 30m (above 6x). The state is ok, low (under 10% left),
    exhausted, or unknown: Prometheus unreachable, a query refused, or no traffic to judge.
    Exit codes: 0 every figure read, 3 configuration, 4 no SLOs (or no such service), 8
    some figure unknown (printed first, as unknown).
    """
    config = open_config(ctx)
    try:
        span = parse_duration(period) if period is not None else None
    except ValueError as exc:
        raise InputError(f"--period: {exc}") from exc
    slos, inventory = _main_slos(config)
    chosen = _chosen(slos, services)
    if not config.prometheus.url:
        raise ConfigError("no Prometheus to read budgets from: set prometheus.url in terry.yml")
    statuses = read_status(
        chosen, config.prometheus, timeout=config.prometheus.timeout, period_seconds=span
    )
    rows = [_row(s, inventory) for s in statuses]
    # what keeps a budget from the gate: labels that name no service, SLOs no host serves
    labelled = label_warnings(chosen, inventory) if inventory else []
    if output == "json":
        emit_json(
            {
                "schema": SCHEMA,
                "warnings": labelled,
                # thresholds for a 30-day period; each SLO's own are in its "thresholds"
                "pairs": [
                    {"long": p.long, "short": p.short, "threshold": p.threshold()} for p in PAIRS
                ],
                "low_percent": LOW_PERCENT,
                "slos": rows,
            }
        )
    else:
        table = Table()
        # the service and the SLO name the row: folded onto more lines, never cut short
        table.add_column("service", overflow="fold")
        table.add_column("hosts")
        table.add_column("slo", overflow="fold")
        for heading in ("objective", "SLI", "budget left", *WINDOWS):
            table.add_column(heading)
        table.add_column("state", no_wrap=True)  # what a person reads first, whole
        for row, s in zip(rows, statuses, strict=True):
            b = s.budget
            left = (
                "unknown"
                if b.remaining_percent is None
                else f"{percent_text(b.remaining_percent)}% ({b.remaining_minutes:.1f} of "
                f"{b.budget_minutes:.1f} min)"
            )
            burns = [_figure(b.burn_rates[w], "{:.2f}x") for w in WINDOWS]
            state = row["state"] + (f" (burning {', '.join(b.burning)})" if b.burning else "")
            table.add_row(
                row["service"],
                _hosts_cell(row["hosts"]) if inventory else "unknown",
                row["slo"],
                f"{objective_text(s.slo.objective)}% / {row['period']}",
                _figure(b.sli, "{:.3f}%"),
                left,
                *burns,
                state,
            )
        console.print(table)
        for row in rows:
            if row["error"]:
                err_console.print(f"{row['service']}/{row['slo']}: {row['error']}")
        _warn(chosen)
        for said in labelled:
            err_console.print(f"terry: warning: {said}", markup=False)
    unknown = [f"{r['service']}/{r['slo']}" for r in rows if r["state"] == "unknown"]
    partly = [f"{r['service']}/{r['slo']}" for r in rows if r["error"] and r["state"] != "unknown"]
    said = [f"budget unknown for {', '.join(unknown)}"] if unknown else []
    said += [f"a burn rate unknown for {', '.join(partly)}"] if partly else []
    if said:
        where = "each SLO's error" if output == "json" else "the errors above"
        raise BudgetsUnknown(f"{'; '.join(said)}: see {where}")


@command.command("rules")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the rule file to PATH, atomically (default: stdout).",
)
@output_option
@click.pass_context
def rules(ctx: click.Context, out: Path | None, output: str) -> None:
    """Prometheus recording and burn-rate alerting rules from slos/ on main.

    \b
    Per SLO: slo:sli_error:ratio_rate{5m,30m,1h,6h} (labels slo_service, slo_name,
    slo_objective) and an ErrorBudgetBurn alert per pair (1h/5m above 14.4x the budget,
    6h/30m above 6x; labels service, severity=page, burn_window). A Sloth spec's labels
    go on every rule, and its alerting (name, labels, annotations, page_alert.disable)
    shapes the alerts. Load the file in Prometheus' rule_files and check it with
    'promtool check rules PATH'. --output json writes the same groups as JSON.

    \b
      terry slo rules --out prometheus/slo-rules.yml
      promtool check rules prometheus/slo-rules.yml
    Exit codes: 0 written, 2 --out not writable, 3 configuration or an SLO spec main cannot
    read, 4 no SLOs on main.
    """
    from terry.cli.output import emit_report
    from terry.slo.rules import rule_groups, rules_yaml

    config = open_config(ctx)
    slos, _inventory = _main_slos(config)
    chosen = _chosen(slos, ())
    if output == "json":
        text = json.dumps({"groups": rule_groups(chosen)}, indent=2) + "\n"
    else:
        text = rules_yaml(chosen)
    emit_report(text, out, f"{len(slos)} SLO(s)")
    _warn(chosen)


def _warn(slos: list[SLO]) -> None:
    """Say on stderr which burn-rate pairs cannot page well (a period far from a month)."""
    for slo in slos:
        for said in pair_warnings(slo.objective, slo.period_seconds):
            err_console.print(f"terry: warning: {slo.key} ({slo.source}): {said}", markup=False)
