"""Drift reports: a scan read back from the store, as JSON, Markdown or one HTML file.

A summary first (hosts scanned, drifted, unreachable; items by role, kind and severity; new
since the host's last scan), then each host. Host text (diffs hold file contents from the
hosts) is data everywhere: fenced in Markdown, escaped by Jinja2's autoescape in HTML.

The JSON (``schema: terry.drift/v1``) is stable: keys are only ever added. See
``docs/drift.md``.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from terry.config import Config
from terry.drift.items import HostStatus, ItemKind
from terry.drift.ledger import ItemState
from terry.errors import ConfigError, GitError, NotFound
from terry.forges.body import fenced
from terry.gitops.repo import Repo
from terry.inventory.hosts import Host, load_inventory
from terry.reports.markup import (
    ColumnChart,
    Series,
    column_chart,
    html_page,
    md_table,
    md_text,
    schema_json,
)
from terry.store import Store
from terry.store.models import DriftHostRow, DriftItemRow, DriftScanRow

__all__ = ["DriftReport", "load_report", "severity", "to_html", "to_json", "to_markdown"]

SCHEMA = "terry.drift/v1"
_SEVERITY_BY_TYPE = {"service": "medium", "package": "medium", "sysctl": "medium", "user": "medium"}


def severity(kind: str, resource: str) -> str:
    """high: the host is not what the inventory says, or cannot be judged; medium: a
    service, package, sysctl or user; low: files and the rest."""
    if kind in (ItemKind.IDENTITY, ItemKind.OS, ItemKind.ERROR):
        return "high"
    return _SEVERITY_BY_TYPE.get(resource.split(" ", 1)[0], "low")


@dataclass(frozen=True)
class ItemView:
    host: str
    state: str  # new | persisting | resolved
    since: datetime
    kind: str
    severity: str
    role: str
    task: str
    resource: str
    detail: str
    diff: str


@dataclass(frozen=True)
class HostView:
    host: str
    status: str  # clean | drifted | unreachable
    message: str | None
    facts: dict[str, Any]
    items: tuple[ItemView, ...]
    # Desired-state commits on main since this host was last clean (changed in git, not
    # yet applied there); empty when it never was clean or nothing changed.
    unapplied: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class HistoryPoint:
    scan_id: int
    finished_at: datetime | None
    hosts: int
    drifted_hosts: int
    unreachable_hosts: int
    items: int


@dataclass(frozen=True)
class Summary:
    hosts_scanned: int
    hosts_drifted: int
    hosts_unreachable: int
    items: int
    new: int
    persisting: int
    resolved: int
    by_role: dict[str, int]
    by_kind: dict[str, int]
    by_severity: dict[str, int]


@dataclass(frozen=True)
class DriftReport:
    scan_id: int
    started_at: datetime
    finished_at: datetime | None
    commit: str
    limit: str | None
    status: str
    error: str | None
    summary: Summary
    hosts: tuple[HostView, ...]
    history: tuple[HistoryPoint, ...] = field(default_factory=tuple)
    schema: str = SCHEMA


_VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")  # host_vars/<name>: a directory or a file
_VARS_DIRS = {"host_vars", "group_vars"}


def _desired_paths(
    config: Config, inventory: _Hosts, commits: tuple[str, str], host: Host | None
) -> list[str]:
    """What can change ``host``'s desired state between two commits: the roles, site.yml,
    the configured inventory's files (which hosts exist, their groups, inline vars) but
    not other hosts' ``host_vars`` or other groups' ``group_vars``, and of those the host's
    own and its groups' (``all`` too), beside the inventory and beside site.yml, where
    Ansible reads them. Without the host (its inventory could not be read): everything under
    the inventory's top directories, as before."""
    site = f"{config.playbooks_path}/site.yml"
    if host is None:
        return sorted({config.roles_path, site, *(p.split("/")[0] for p in config.inventory)})
    paths = {config.roles_path, site}
    var_dirs = {config.playbooks_path}
    for source in config.inventory:
        source = source.rstrip("/")
        files = inventory.files(commits[0], source) | inventory.files(commits[1], source)
        if not files or files == {source}:  # a file (or gone): its vars sit beside it
            paths.add(source)
            var_dirs.add(posixpath.dirname(source) or ".")
            continue
        var_dirs.add(source)
        paths |= {f for f in files if not _VARS_DIRS & set(f[len(source) :].split("/"))}
    for directory in var_dirs:
        for kind, names in (("host_vars", [host.name]), ("group_vars", [*host.groups, "all"])):
            for name in names:
                paths |= {
                    posixpath.normpath(f"{directory}/{kind}/{name}{suffix}")
                    for suffix in _VARS_SUFFIXES
                }
    return sorted(paths)


def _unapplied(
    session: Any, repo: Repo, config: Config, host: str, scan: DriftScanRow, inventory: _Hosts
) -> tuple[dict[str, str], ...]:
    last_clean = session.scalar(
        select(DriftScanRow.commit_sha)
        .join(DriftHostRow, DriftHostRow.scan_id == DriftScanRow.id)
        .where(
            DriftHostRow.host == host,
            DriftHostRow.status == HostStatus.CLEAN.value,
            DriftScanRow.id < scan.id,
            DriftScanRow.status == "done",
        )
        .order_by(DriftScanRow.id.desc())
        .limit(1)
    )
    if last_clean is None or last_clean == scan.commit_sha:
        return ()
    try:
        span = (last_clean, scan.commit_sha)
        paths = _desired_paths(config, inventory, span, inventory.get(host))
        commits = repo.commits_touching(last_clean, scan.commit_sha, paths)
    except GitError:  # a commit that is gone (history rewritten): nothing to say
        return ()
    return tuple({"commit": sha, "subject": subject} for sha, subject in commits)


class _Hosts:
    """The scan's inventory, read once and only when a drifted host asks (Ansible's
    inventory takes a second to read); None for a host it lacks or when it cannot be read."""

    def __init__(self, repo: Repo, config: Config, commit: str) -> None:
        self._repo, self._config, self._commit = repo, config, commit
        self._hosts: dict[str, Host] | None = None
        self._files: dict[tuple[str, str], set[str]] = {}

    def files(self, commit: str, source: str) -> set[str]:
        """The files of ``commit`` at or under the inventory ``source`` (asked of git once:
        drifted hosts mostly share their last clean scan)."""
        if (commit, source) not in self._files:
            self._files[commit, source] = self._repo.files(commit, [source])
        return self._files[commit, source]

    def get(self, name: str) -> Host | None:
        if self._hosts is None:
            try:
                tree = self._repo.tree(self._commit)
                self._hosts = dict(load_inventory(tree, self._config.inventory).hosts)
            except (ConfigError, GitError):  # a tree that is gone, an unreadable inventory
                self._hosts = {}
        return self._hosts.get(name)


def _history(session: Any, upto: int, count: int = 30) -> tuple[HistoryPoint, ...]:
    scans = list(
        session.scalars(
            select(DriftScanRow)
            .where(DriftScanRow.id <= upto, DriftScanRow.status == "done")
            .order_by(DriftScanRow.id.desc())
            .limit(count)
        )
    )
    points = []
    for scan in reversed(scans):
        statuses = Counter(
            session.scalars(select(DriftHostRow.status).where(DriftHostRow.scan_id == scan.id))
        )
        items = session.scalar(
            select(func.count())
            .select_from(DriftItemRow)
            .where(
                DriftItemRow.scan_id == scan.id,
                DriftItemRow.state != ItemState.RESOLVED.value,
            )
        )
        points.append(
            HistoryPoint(
                scan.id,
                scan.finished_at,
                sum(statuses.values()),
                statuses.get(HostStatus.DRIFTED.value, 0),
                statuses.get(HostStatus.UNREACHABLE.value, 0),
                int(items or 0),
            )
        )
    return tuple(points)


def load_report(store: Store, config: Config, scan_id: int | None = None) -> DriftReport:
    """The scan ``scan_id`` (default: the newest finished one) with its hosts and items."""
    repo = Repo(config.repo, main_branch=config.main_branch)
    with store.session() as session:
        if scan_id is None:
            scan = session.scalars(
                select(DriftScanRow)
                .where(DriftScanRow.status == "done")
                .order_by(DriftScanRow.id.desc())
                .limit(1)
            ).first()
            if scan is None:
                raise NotFound("no finished drift scan yet: run 'terry drift scan'")
        else:
            scan = session.get(DriftScanRow, scan_id)
            if scan is None:
                raise NotFound(f"drift scan {scan_id} does not exist")
        host_rows = list(
            session.scalars(
                select(DriftHostRow)
                .where(DriftHostRow.scan_id == scan.id)
                .order_by(DriftHostRow.host)
            )
        )
        item_rows = list(
            session.scalars(
                select(DriftItemRow)
                .where(DriftItemRow.scan_id == scan.id)
                .order_by(DriftItemRow.host, DriftItemRow.id)
            )
        )
        by_host: dict[str, list[ItemView]] = {}
        for row in item_rows:
            by_host.setdefault(row.host, []).append(
                ItemView(
                    host=row.host,
                    state=row.state,
                    since=row.since,
                    kind=row.kind,
                    severity=severity(row.kind, row.resource),
                    role=row.role,
                    task=row.task,
                    resource=row.resource,
                    detail=row.detail,
                    diff=row.diff,
                )
            )
        inventory = _Hosts(repo, config, scan.commit_sha)
        hosts = tuple(
            HostView(
                host=h.host,
                status=h.status,
                message=h.message,
                facts=dict(h.facts),
                items=tuple(by_host.get(h.host, ())),
                unapplied=(
                    _unapplied(session, repo, config, h.host, scan, inventory)
                    if h.status == HostStatus.DRIFTED.value
                    else ()
                ),
            )
            for h in host_rows
        )
        history = _history(session, scan.id)
        summary = summarize(hosts)
        return DriftReport(
            scan_id=scan.id,
            started_at=scan.started_at,
            finished_at=scan.finished_at,
            commit=scan.commit_sha,
            limit=scan.limit,
            status=scan.status,
            error=scan.error,
            summary=summary,
            hosts=hosts,
            history=history,
        )


# -- renderers -----------------------------------------------------------------------------
def to_json(report: DriftReport) -> str:
    return schema_json(report)


def to_markdown(report: DriftReport) -> str:
    s = report.summary
    lines = [
        f"# Drift report: scan {report.scan_id}",
        "",
        f"Desired state at `{report.commit[:12]}`"
        + (f", hosts `{md_text(report.limit)}`" if report.limit else ", all hosts")
        + f"; finished {report.finished_at.isoformat() if report.finished_at else '-'}.",
        "",
        "## Summary",
        "",
        *md_table(
            ["hosts scanned", "drifted", "unreachable", "items", "new", "persisting", "resolved"],
            [
                (
                    s.hosts_scanned,
                    s.hosts_drifted,
                    s.hosts_unreachable,
                    s.items,
                    s.new,
                    s.persisting,
                    s.resolved,
                )
            ],
        ),
        "",
        "By role: " + (", ".join(f"{md_text(k)} {v}" for k, v in s.by_role.items()) or "none"),
        "",
        "By severity: " + (", ".join(f"{k} {v}" for k, v in s.by_severity.items()) or "none"),
        "",
    ]
    if len(report.history) > 1:
        lines += ["## Over time", ""]
        lines += md_table(
            ["scan", "finished", "hosts", "drifted", "items"],
            (
                (
                    p.scan_id,
                    p.finished_at.strftime("%Y-%m-%d %H:%M") if p.finished_at else "-",
                    p.hosts,
                    p.drifted_hosts,
                    p.items,
                )
                for p in report.history
            ),
        )
        lines.append("")
    lines += ["## Hosts", ""]
    for host in report.hosts:
        lines.append(f"### {md_text(host.host)}: {host.status}")
        lines.append("")
        if host.status == HostStatus.UNREACHABLE.value:
            lines += [f"Unreachable (not judged): {md_text(host.message or '')}", ""]
            continue
        for commit in host.unapplied:
            lines.append(
                f"- desired state changed in git and not applied here: "
                f"`{commit['commit'][:12]}` {md_text(commit['subject'])}"
            )
        if host.unapplied:
            lines.append("")
        if not host.items:
            lines += ["No drift.", ""]
            continue
        lines += md_table(
            ["state", "since", "severity", "role", "resource", "task"],
            (
                (
                    i.state,
                    i.since.strftime("%Y-%m-%d %H:%M"),
                    i.severity,
                    md_text(i.role or "-"),
                    md_text(i.resource),
                    md_text(i.task),
                )
                for i in host.items
            ),
        )
        lines.append("")
        for i in host.items:
            if i.state == ItemState.RESOLVED.value or not (i.diff or i.detail):
                continue
            lines.append(f"**{md_text(i.resource)}** ({md_text(i.task)})")
            lines.append("")
            lines.append(fenced(i.diff or i.detail, "diff" if i.diff else ""))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_ITEMS = Series("drifted items", "#f0a39b")
_HOSTS = Series("drifted hosts", "#1d2330")


def _chart(history: tuple[HistoryPoint, ...]) -> ColumnChart:
    """Drifted items per scan as columns, drifted hosts as dots."""

    def title(p: HistoryPoint) -> str:
        when = p.finished_at.strftime("%Y-%m-%d %H:%M") if p.finished_at else "unfinished"
        return f"scan {p.scan_id} ({when})"

    return column_chart(
        [(str(p.scan_id), title(p)) for p in history],
        [(p.items,) for p in history],
        (_ITEMS,),
        markers=[p.drifted_hosts for p in history],
        marker=_HOSTS,
        axis="scan",
        height=220,
    )


def to_html(report: DriftReport) -> str:
    return html_page("drift/report.html.j2", r=report, chart=_chart(report.history))


def summarize(hosts: Sequence[HostView]) -> Summary:
    """A scan's summary counted from its hosts' items (the whole scan, or a tenant's cut of
    it: terry.reports.scoped)."""
    current = [i for h in hosts for i in h.items if i.state != ItemState.RESOLVED.value]
    states = Counter(i.state for h in hosts for i in h.items)
    statuses = Counter(h.status for h in hosts)
    return Summary(
        hosts_scanned=len(hosts),
        hosts_drifted=statuses.get(HostStatus.DRIFTED.value, 0),
        hosts_unreachable=statuses.get(HostStatus.UNREACHABLE.value, 0),
        items=len(current),
        new=states.get(ItemState.NEW.value, 0),
        persisting=states.get(ItemState.PERSISTING.value, 0),
        resolved=states.get(ItemState.RESOLVED.value, 0),
        by_role=dict(sorted(Counter(i.role or "(facts)" for i in current).items())),
        by_kind=dict(sorted(Counter(i.kind for i in current).items())),
        by_severity={
            s: n
            for s in ("high", "medium", "low")
            if (n := sum(1 for i in current if i.severity == s))
        },
    )
