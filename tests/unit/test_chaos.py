"""Chaos experiments without a host: what an experiment file must say, which host a run may
break, how a run is judged and how the resilience report adds runs up."""

from __future__ import annotations

import copy
import random
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from terry.chaos.experiment import find_experiment, list_experiments, parse_experiment
from terry.chaos.faults import Fault, check_params
from terry.chaos.journal import ChaosRunRow, Outcome
from terry.chaos.record import phases
from terry.chaos.report import build_report, to_html, to_json, to_markdown
from terry.chaos.run import judge
from terry.chaos.targets import Choice, Selector, select_targets
from terry.config import ScheduleConfig
from terry.errors import InputError, NotFound, StateError
from terry.inventory.hosts import Host, Inventory
from terry.store import Store
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

EXAMPLES = REPO_ROOT / "examples" / "experiments"
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _disk_fill() -> dict:
    return yaml.safe_load((EXAMPLES / "disk-fill.yaml").read_text())


# -- experiment files ------------------------------------------------------------------------
def test_every_example_experiment_is_valid_for_chaostoolkit_and_for_terry() -> None:
    found = list_experiments(EXAMPLES)
    assert {name for name, _, _ in found} == {
        "disk-fill.yaml",
        "cpu-stress.json",
        "service-stop.yaml",
    }
    assert all(exp is not None and not problem for _, exp, problem in found), found
    disk = find_experiment(EXAMPLES, "disk-fill")
    assert disk.fault is Fault.DISK_FILL
    assert disk.params == {"path": "/srv/data", "percent": 90, "threshold": 80}
    assert disk.selector.environments == ("staging",) and disk.selector.count == 1
    assert disk.resolve_within == 120


def test_chaostoolkit_lib_refuses_an_experiment_without_a_title() -> None:
    data = _disk_fill()
    del data["title"]
    with pytest.raises(InputError, match="requires a title"):
        parse_experiment("x.yaml", data)


def test_an_experiment_must_remove_what_it_injects() -> None:
    data = _disk_fill()
    data["rollbacks"] = []
    with pytest.raises(InputError, match="a rollback must remove the fault"):
        parse_experiment("x.yaml", data)
    data = _disk_fill()
    data["rollbacks"][0]["provider"]["arguments"]["fault"] = "cpu-stress"
    with pytest.raises(InputError, match="a rollback must remove the fault"):
        parse_experiment("x.yaml", data)


def test_an_experiment_injects_exactly_one_fault() -> None:
    data = _disk_fill()
    data["method"].insert(0, copy.deepcopy(data["method"][0]))
    with pytest.raises(InputError, match="exactly one fault"):
        parse_experiment("x.yaml", data, library=False)


def _set(data: dict, path: str, value: object) -> dict:
    """``data`` with ``value`` at ``path`` (dotted; numbers index lists)."""
    node: Any = data
    *parents, last = path.split(".")
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("method.0.provider.arguments.params", [1, 2], "params must be a mapping"),
        ("method.0.provider.arguments.params", "abc", "params must be a mapping"),
        ("method.0.provider.arguments", ["disk-fill"], r"method\[0\]\.provider\.arguments"),
        ("extensions", {"name": "terry"}, "extensions must be a list"),
        ("extensions.0.resolve_withn", 5, "unknown key 'resolve_withn' in extensions.terry"),
        ("method", "inject", "method must be a list"),
    ],
)
def test_a_malformed_experiment_is_an_input_error_naming_the_field(
    path: str, value: object, message: str
) -> None:
    """Shapes chaostoolkit-lib does not expect are errors (exit 2) that name the field, not
    the library's TypeError (exit 1, which says "not resolved")."""
    data = _disk_fill()
    data.setdefault("extensions", [{"name": "terry", "resolve_within": 60}])
    with pytest.raises(InputError, match=message):
        parse_experiment("x.yaml", _set(data, path, value))


def test_the_fault_goes_in_once_from_the_method_only() -> None:
    data = _disk_fill()
    data["rollbacks"].append(copy.deepcopy(data["method"][0]))
    with pytest.raises(InputError, match="a rollback may not inject a fault"):
        parse_experiment("x.yaml", data, library=False)
    data = _disk_fill()
    data["method"].append({"ref": data["method"][0]["name"]})
    with pytest.raises(InputError, match="no ref may run it again"):
        parse_experiment("x.yaml", data, library=False)
    data = _disk_fill()
    data["extensions"] = [{"name": "terry"}, {"name": "terry", "resolve_within": 5}]
    with pytest.raises(InputError, match="one extension named terry"):
        parse_experiment("x.yaml", data, library=False)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"path": "/srv/data"}, "'percent' is required"),
        ({"path": "/srv/data", "percent": 140}, "between 1 and 100"),
        ({"path": "/srv/data", "percent": "90"}, "must be a number"),
        ({"path": "/srv/{{ lookup('pipe', 'id') }}", "percent": 90}, "not a plain path"),
        ({"path": "/srv/../etc", "percent": 90}, "not a plain path"),
        ({"path": "srv/data", "percent": 90}, "not a plain path"),
        ({"path": "/srv/data", "percent": 90, "shell": "rm"}, "unknown parameter 'shell'"),
    ],
)
def test_fault_parameters_are_checked_before_they_reach_a_host(params: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_params(Fault.DISK_FILL, params)


def test_an_unknown_fault_is_named_with_the_known_ones() -> None:
    data = _disk_fill()
    data["method"][0]["provider"]["arguments"]["fault"] = "meteor-strike"
    with pytest.raises(InputError, match=r"unknown fault .meteor-strike. .*disk-fill"):
        parse_experiment("x.yaml", data, library=False)


def test_fault_arguments_take_the_experiments_configuration_as_chaos_toolkit_fills_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``${key}`` in the fault's arguments is filled from ``configuration`` (literal values
    and ``type: env`` entries) before Terry checks it, as chaostoolkit-lib fills it when it
    calls the action: a value that is one placeholder keeps its type."""
    monkeypatch.setenv("TERRY_TEST_CHAOS_DIR", "/srv/data")
    data = _disk_fill()
    data["configuration"] = {
        "fill": 85,
        "fault_name": "disk-fill",
        "where": {"type": "env", "key": "TERRY_TEST_CHAOS_DIR"},
        "bar": {"type": "env", "key": "TERRY_TEST_CHAOS_UNSET", "default": 70},
    }
    arguments = data["method"][0]["provider"]["arguments"]
    arguments["fault"] = "${fault_name}"
    arguments["params"] = {"path": "${where}", "percent": "${fill}", "threshold": "${bar}"}
    data["rollbacks"][0]["provider"]["arguments"]["fault"] = "${fault_name}"
    experiment = parse_experiment("x.yaml", data)
    assert experiment.fault is Fault.DISK_FILL
    assert experiment.params == {"path": "/srv/data", "percent": 85, "threshold": 70}
    # chaostoolkit-lib itself fills the same values when it runs the method
    from chaoslib import substitute
    from chaoslib.configuration import load_configuration

    assert substitute(arguments, load_configuration(data["configuration"]), {})["params"] == (
        experiment.params
    )


@pytest.mark.parametrize(
    ("configuration", "percent", "message"),
    [
        ({}, "${fill}", r"\$\{fill\} in the fault's arguments names no configuration value"),
        ({"fil": 90}, "${fill}", r"names no configuration value \(known: fil\)"),
        ({"fill": 90}, "${fill}%", "must be a number"),  # text around it: a string, refused
        ({"fill": {"type": "env", "key": "TERRY_TEST_CHAOS_UNSET"}}, "${fill}", "environment key"),
        (["fill"], "${fill}", "configuration must be a mapping"),
    ],
)
def test_a_placeholder_nothing_fills_is_refused_by_name(
    configuration: object, percent: str, message: str
) -> None:
    """A placeholder that names no configuration value (a typo, or a secret: a fault's
    parameters are recorded and shown, so they never come from secrets) is an error that
    names it, never a fault run with the text ``${fill}``."""
    data = _disk_fill()
    data["configuration"] = configuration
    data["secrets"] = {"vault": {"fill": {"type": "env", "key": "TERRY_TEST_CHAOS_UNSET"}}}
    data["method"][0]["provider"]["arguments"]["params"]["percent"] = percent
    with pytest.raises(InputError, match=message):
        parse_experiment("x.yaml", data, library=False)


def test_a_missing_experiment_lists_the_known_ones() -> None:
    with pytest.raises(NotFound, match=r"cpu-stress\.json"):
        find_experiment(EXAMPLES, "nope")


def test_a_run_takes_an_experiment_on_main_not_a_file_elsewhere(tmp_path: Path) -> None:
    outside = tmp_path / "new.yaml"
    outside.write_text((EXAMPLES / "disk-fill.yaml").read_text())
    assert find_experiment(EXAMPLES, str(outside)).fault is Fault.DISK_FILL  # validate
    with pytest.raises(InputError, match="a run takes an experiment on main by name"):
        find_experiment(EXAMPLES, str(outside), files=False)
    assert find_experiment(EXAMPLES, "disk-fill", files=False).fault is Fault.DISK_FILL


def test_a_chaos_schedule_names_its_experiment() -> None:
    ScheduleConfig(name="chaos", cron="0 2 * * 1", run="chaos", experiment="disk-fill")
    with pytest.raises(ValueError, match="experiment"):
        ScheduleConfig(name="chaos", cron="0 2 * * 1", run="chaos")
    with pytest.raises(ValueError, match="experiment"):
        ScheduleConfig(name="scan", interval=60, experiment="disk-fill")


# -- targets ---------------------------------------------------------------------------------
def _fleet() -> Inventory:
    hosts = [
        Host("db-01", None, "production", None, {"role": "db"}),
        Host("web-01", None, "staging", None, {"role": "web"}),
        Host("web-02", None, "staging", None, {"role": "web"}),
        Host("web-03", None, "staging", None, {"role": "web"}),
        Host("dev-01", None, "development", None, {"role": "web"}),
    ]
    return Inventory({h.name: h for h in hosts})


_ALLOWED = ("staging", "development", "test")


def test_production_is_never_drawn_unless_chaos_environments_lists_it() -> None:
    drawn = {
        select_targets(
            _fleet(),
            Selector(),
            allowed_environments=_ALLOWED,
            busy=(),
            max_blast_radius=1,
            rng=random.Random(seed),
        )
        .hosts[0]
        .name
        for seed in range(200)
    }
    assert drawn == {"web-01", "web-02", "web-03", "dev-01"}
    choice = select_targets(
        _fleet(),
        Selector(hosts=("db-*",)),
        allowed_environments=(*_ALLOWED, "production"),
        busy=(),
        max_blast_radius=1,
    )
    assert [h.name for h in choice.hosts] == ["db-01"]


def test_a_host_with_an_open_incident_is_not_drawn_and_not_forced() -> None:
    selector = Selector(environments=("staging",))
    choice = select_targets(
        _fleet(),
        selector,
        allowed_environments=_ALLOWED,
        busy={"web-01", "web-02"},
        max_blast_radius=1,
    )
    assert [h.name for h in choice.hosts] == ["web-03"]
    assert "open incident" in choice.excluded["web-01"]
    with pytest.raises(StateError, match="web-01 may not be a chaos target: has an open"):
        select_targets(
            _fleet(),
            selector,
            allowed_environments=_ALLOWED,
            busy={"web-01"},
            max_blast_radius=1,
            forced="web-01",
        )
    with pytest.raises(StateError, match="no host may be a chaos target now"):
        select_targets(
            _fleet(),
            selector,
            allowed_environments=_ALLOWED,
            busy={"web-01", "web-02", "web-03"},
            max_blast_radius=1,
        )


def test_forcing_production_is_refused_and_so_is_a_larger_blast_radius() -> None:
    with pytest.raises(StateError, match=r"production is not in chaos\.environments"):
        select_targets(
            _fleet(),
            Selector(),
            allowed_environments=_ALLOWED,
            busy=(),
            max_blast_radius=1,
            forced="db-01",
        )
    with pytest.raises(NotFound, match="no host 'nope'"):
        select_targets(
            _fleet(),
            Selector(),
            allowed_environments=_ALLOWED,
            busy=(),
            max_blast_radius=1,
            forced="nope",
        )
    with pytest.raises(InputError, match="max_blast_radius is 1"):
        select_targets(
            _fleet(), Selector(count=2), allowed_environments=_ALLOWED, busy=(), max_blast_radius=1
        )
    two = select_targets(
        _fleet(),
        Selector(count=2, labels={"role": "web"}),
        allowed_environments=_ALLOWED,
        busy=(),
        max_blast_radius=2,
    )
    assert len({h.name for h in two.hosts}) == 2


def test_a_host_whose_service_budget_is_low_or_unknown_is_not_drawn_and_not_forced() -> None:
    def served(name: str, service: str) -> Host:
        return Host(name, None, "staging", None, {"service": service})

    fleet = Inventory(
        {
            h.name: h
            for h in (
                served("pay-01", "payments"),  # 10% left: below the 25% threshold
                served("shop-01", "checkout,search"),  # search: Prometheus down
                served("cart-01", "checkout"),  # 60% left
                served("edge-01", "edge"),  # exactly the threshold: still allowed
                Host("batch-01", None, "staging", None, {}),  # serves nothing with an SLO
            )
        }
    )
    budgets = {"payments": 10.0, "search": None, "checkout": 60.0, "edge": 25.0}

    def pick(
        min_percent: float, forced: str | None = None, rng: random.Random | None = None
    ) -> Choice:
        return select_targets(
            fleet,
            Selector(),
            allowed_environments=_ALLOWED,
            busy=(),
            max_blast_radius=1,
            budgets=budgets,
            min_budget_percent=min_percent,
            forced=forced,
            rng=rng,
        )

    choice = pick(25)
    assert choice.candidates == ("batch-01", "cart-01", "edge-01")
    assert choice.excluded["pay-01"].endswith("payments (10.0%)")
    assert "(25%) or unknown: search (unknown)" in choice.excluded["shop-01"]
    drawn = {pick(25, rng=random.Random(n)).hosts[0].name for n in range(50)}
    assert drawn == {"batch-01", "cart-01", "edge-01"}
    with pytest.raises(StateError, match="pay-01 may not be a chaos target: SLO error budget"):
        pick(25, forced="pay-01")
    # 0 turns the rule off: every staging host may be drawn again
    assert len(pick(0).candidates) == 5


# -- judging a run and adding runs up --------------------------------------------------------
def _row(
    n: int,
    outcome: Outcome | None = None,
    *,
    fault: str = "disk-fill",
    marks: tuple[int | None, ...] = (10, 20, 30, 45),
    truth: str | None = "healthy",
    incident: int | None = 1,
) -> ChaosRunRow:
    start = T0 + timedelta(days=n)
    at = [start + timedelta(seconds=s) if s is not None else None for s in marks]
    return ChaosRunRow(
        id=n,
        experiment="x",
        title="x",
        fault=fault,
        params={},
        target=f"web-0{n % 3}",
        environment="staging",
        state="finished",
        outcome=outcome.value if outcome else None,
        dry_run=False,
        started_at=start,
        injected_at=start,
        alert_at=at[0],
        decided_at=at[1],
        applied_at=at[2],
        verified_at=at[3],
        truth=truth,
        incident_id=incident,
        detail="",
    )


def test_phases_split_the_time_to_repair_and_a_missing_mark_is_not_zero() -> None:
    row = _row(1)
    split = phases(row.injected_at, row.alert_at, row.decided_at, row.applied_at, row.verified_at)
    assert split == {"detect": 10.0, "decide": 10.0, "apply": 10.0, "verify": 15.0, "mttr": 45.0}
    split = phases(row.injected_at, row.alert_at, None, None, None)
    assert split == {"detect": 10.0, "decide": None, "apply": None, "verify": None, "mttr": None}


def test_a_verified_fix_the_host_contradicts_is_a_false_fix() -> None:
    assert judge(_row(1), interrupted=False) is Outcome.RESOLVED
    assert judge(_row(1, truth="faulty"), interrupted=False) is Outcome.FALSE_FIX
    assert judge(_row(1, truth="unknown"), interrupted=False) is Outcome.UNRESOLVED
    assert judge(_row(1, marks=(None,) * 4, incident=None), interrupted=False) is Outcome.UNDETECTED
    assert judge(_row(1, marks=(10, 20, None, None)), interrupted=False) is Outcome.UNRESOLVED
    assert judge(_row(1, marks=(10, 20, None, None)), interrupted=True) is Outcome.INTERRUPTED


def test_the_report_adds_up_rates_false_fixes_and_the_slowest_phase() -> None:
    rows = [
        _row(1, Outcome.RESOLVED, marks=(10, 20, 30, 40)),  # mttr 40
        _row(2, Outcome.RESOLVED, marks=(2, 4, 60, 70)),  # mttr 70, apply 56
        _row(3, Outcome.FALSE_FIX, truth="faulty"),
        _row(4, Outcome.UNDETECTED, fault="cpu-stress", marks=(None,) * 4, incident=None),
        _row(5, Outcome.RESOLVED, fault="service-stop", marks=(3, 4, 5, 900)),  # over threshold
        _row(6, None),  # still running: not judged
    ]
    report = build_report(rows, threshold=600)
    assert (report.runs, report.judged, report.resolved) == (6, 5, 3)
    assert report.auto_resolution_rate == pytest.approx(3 / 5)
    assert [p.run_id for p in report.false_fixes] == [3]
    assert [p.run_id for p in report.undetected] == [4]
    assert [p.run_id for p in report.over_threshold] == [5]
    assert report.phase_means["apply"] == pytest.approx((10 + 56 + 1) / 3)
    assert report.slowest_phase == "verify"  # (10 + 10 + 895) / 3
    disk = next(f for f in report.faults if f.fault == "disk-fill")
    assert (disk.runs, disk.resolved, disk.median_mttr) == (3, 2, 55.0)

    md = to_markdown(report)
    assert "auto-resolution rate 60%, 1 false fix(es), 1 undetected" in md
    assert "## False fixes" in md and "- run 3 on web-00" in md
    assert "## disk-fill: 2/3 resolved, median MTTR 55s" in md
    assert "#" * 40 + "  70s" in md  # the slowest disk-fill run has the longest bar
    page = to_html(report)
    assert page.count("<svg") == 3 and "<polyline" in page
    assert '"auto_resolution_rate": 0.6' in to_json(report)


def test_the_html_chart_places_each_run_on_its_day() -> None:
    rows = [_row(n, Outcome.RESOLVED) for n in (1, 2, 11)]  # a day apart, then nine days
    page = to_html(build_report(rows, threshold=600))
    xs = [float(x) for x in re.findall(r'<circle cx="([0-9.]+)"', page)]
    assert xs == sorted(xs) and xs[1] - xs[0] < (xs[2] - xs[1]) / 5
    assert ">2026-12-02</text>" in page and ">2026-12-12</text>" in page


def test_the_html_report_renders_host_names_inert() -> None:
    row = _row(1, Outcome.UNDETECTED, marks=(None,) * 4, incident=None)
    row.target = "<script>alert(1)</script>"
    page = to_html(build_report([row], threshold=600))
    assert "<script>" not in page and "&lt;script&gt;" in page


def _disk_fill_run(store: Store) -> int:
    """A disk-fill run on web-01 journalled by this process (selected, nothing in yet)."""
    from terry.chaos import journal

    return journal.open_run(
        store,
        experiment="disk-fill.yaml",
        title="t",
        fault="disk-fill",
        params={"path": "/srv/data", "percent": 90},
        target="web-01",
        environment="staging",
    )


# -- the journal and the notifier ------------------------------------------------------------
def test_a_slow_or_unresolved_run_is_an_event_the_notifier_delivers(store: Store) -> None:
    from sqlalchemy import select

    from terry.chaos import journal
    from terry.chaos.run import _finish
    from terry.notify.events import EventKind, load_events
    from terry.store.models import AuditRow

    def run(verified_after: float | None) -> int:
        run_id = _disk_fill_run(store)
        assert [r.id for r in journal.unfinished(store)] == []  # not injecting yet
        journal.update(store, run_id, state=journal.RunState.INJECTED, injected_at=T0)
        assert run_id in [r.id for r in journal.unfinished(store)]
        journal.update(store, run_id, incident_id=7, alert_at=T0 + timedelta(seconds=5))
        if verified_after is not None:
            journal.update(
                store, run_id, verified_at=T0 + timedelta(seconds=verified_after), truth="healthy"
            )
        journal.update(store, run_id, state=journal.RunState.REMOVED, removed_at=T0)
        return run_id

    fast, slow, unresolved = run(30), run(900), run(None)
    assert _finish(store, fast, interrupted=False, threshold=600) == (Outcome.RESOLVED, False)
    assert _finish(store, slow, interrupted=False, threshold=600) == (Outcome.RESOLVED, True)
    assert _finish(store, unresolved, interrupted=False, threshold=600) == (
        Outcome.UNRESOLVED,
        True,
    )
    assert journal.unfinished(store) == []
    with store.session() as session:
        rows = session.scalars(select(AuditRow).where(AuditRow.entity == "chaos")).all()
        events = load_events(session, rows)
    assert [(e.kind, e.incident_id) for e in events] == [(EventKind.CHAOS_SLOW, None)] * 2
    assert "resolved, MTTR 900s (threshold 600s)" in events[0].reason
    assert "unresolved, no verified fix" in events[1].reason


def test_recovery_leaves_a_run_whose_process_is_alive_to_it(store: Store) -> None:
    """``terry chaos recover`` (and every run's start) cleans up after runs that died, never
    a run still going elsewhere: another process, or another thread of this one (``terry
    serve`` runs schedules in threads); a leftover of this thread's own earlier run is
    cleaned."""
    import threading

    from terry.chaos import journal
    from terry.chaos.run import recover
    from terry.config import Config

    opened: list[int] = []
    release = threading.Event()

    def elsewhere() -> None:
        opened.append(_disk_fill_run(store))
        release.wait(30)

    other = threading.Thread(target=elsewhere)
    other.start()
    try:
        while not opened:
            time.sleep(0.01)
        [live] = opened
        journal.update(store, live, state=journal.RunState.INJECTED, injected_at=T0)
        said: list[str] = []
        config = Config.model_construct()  # never read for the live run: nothing removed
        assert recover(config, store, said.append) == []
        assert said == [
            f"run {live}: disk-fill on web-01 left alone: its process is still running it"
        ]
        row = journal.get(store, live)
        assert row is not None and row.holder and row.holder.count("@") == 1  # pid, start
    finally:
        release.set()
        other.join()
    # the thread ended: its run is a leftover now, which recovery sets out to remove
    said = []
    recover(Config.model_construct(), store, said.append)
    assert said[0] == f"run {live}: removing disk-fill left on web-01 by an interrupted run"


def test_the_timeline_finds_an_incident_by_when_terry_received_its_alert(store: Store) -> None:
    """An alert's startsAt is the sender's clock (a skewed one, an example fed by hand): an
    incident opened "before" the injection whose alert Terry received after it is the run's;
    one whose alert came before the injection is not."""
    from terry.chaos.record import read_timeline
    from terry.store.models import AlertRow, IncidentRow

    def incident(host: str, received: datetime) -> int:
        with store.session() as session:
            row = IncidentRow(
                fingerprint=f"chaos-{host}",
                source="alert",
                title="DiskUsageHigh",
                host=host,
                state="open",
                opened_at=T0 - timedelta(days=12),  # the alert's startsAt
            )
            session.add(row)
            session.flush()
            session.add(
                AlertRow(
                    fingerprint=f"chaos-{host}",
                    status="firing",
                    alertname="DiskUsageHigh",
                    starts_at=T0 - timedelta(days=12),
                    labels={},
                    annotations={},
                    received_at=received,
                    incident_id=row.id,
                    effect="opened",
                )
            )
            return row.id

    after = incident("web-01", T0 + timedelta(seconds=8))
    incident("web-02", T0 - timedelta(minutes=5))
    found = read_timeline(store, "web-01", T0)
    assert found.incident_id == after
    assert found.alert_at is not None and found.alert_at - T0 == timedelta(seconds=8)
    assert read_timeline(store, "web-02", T0).incident_id is None
