"""Speed does not change across a refactor: two revisions' bench figures, same run, as ratios.

Why: a refactor that moves modules should not make Terry slower, and figures from another day
(or another machine: see README.md, sessions 1-3) cannot show a 5% change. So this runs the
bench scripts of both revisions back to back on the same machine, alternating which goes
first (round 1 base then new, round 2 new then base, ...) so machine load falls on both
alike, and prints new against base for each figure.

Each side runs its OWN copy of the scripts (a moved module breaks the old imports, and the
scripts are part of what a refactor changes): the base revision from a throw-away ``git
worktree`` under /tmp (removed afterwards), the new side from the working tree (or another
worktree with ``--new REV``), both with the venv's interpreter and ``PYTHONPATH`` set to that
side's root, so ``import terry`` loads that side's copy (checked at the start and printed).

The scripts print plain-text tables and have no ``--json`` flag; the tables are read by
their header and row labels (``_common.table``: columns two spaces apart), and a missing
table or row stops that script's comparison with a message naming the line it expected.

Figures (ratio above 1 is worse; "within 5%" means ratio ≤ 1.05):

- decide.py: Terry's own part (total − ansible) per alert, p50 and p99, seconds;
- apply_overhead.py: Terry's applier, median seconds, and applier ÷ plain ansible-playbook;
  the whole ``terry proposals apply`` CLI, median seconds;
- ingest.py: each ``terry serve`` row, accepted alerts/s (ratio base ÷ new, since higher is
  better) and p99 latency.

Control rows (plain ansible-playbook, the Starlette baseline: no Terry code) show how much
the machine itself moved between the two sides; read the ratios against them.

    python bench/compare.py [--base REV] [--new REV] [--quick] [--rounds N]
                            [--only decide,apply_overhead,ingest] [--logs DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from _revisions import PYTHON, RevisionError, Side, default_base, side

TARGET = 1.05  # ratio, oriented so that above 1 is slower


class FormatError(RuntimeError):
    """A script's output lacks a table or row this comparison reads."""


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    higher_is_better: bool = False
    control: bool = False  # no Terry code: shows the machine's drift between the sides


Reading = dict[Figure, float]


# -- reading the scripts' tables -----------------------------------------------------------
def read_table(out: str, first: str, column: str) -> tuple[list[str], dict[str, list[str]]]:
    """The table whose header line starts with ``first`` and has a ``column`` column:
    (its column names, its rows keyed by first cell). Cells are two or more spaces apart."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        header = re.split(r"\s{2,}", line.strip())
        if not line.startswith(first) or column not in header:
            continue
        rows: dict[str, list[str]] = {}
        for row in lines[i + 1 :]:
            if not row.strip():
                break
            if set(row.strip()) <= {"-", " "}:  # the rule under the header
                continue
            cells = re.split(r"\s{2,}", row.strip())
            rows[cells[0]] = cells
        return header, rows
    raise FormatError(
        f"expected a table header line starting {first!r} with a {column!r} column; not found"
    )


def cell(header: list[str], rows: dict[str, list[str]], label: str, column: str) -> float:
    """The number in the row whose label starts with ``label``, under ``column``."""
    found = [rows[label]] if label in rows else []
    found += [cells for name, cells in rows.items() if name.startswith(label)]
    if not found:
        raise FormatError(f"expected a row starting {label!r} in the table {header[0]!r}")
    cells = found[0]
    if len(cells) != len(header):
        raise FormatError(f"row {cells[0]!r} has {len(cells)} cells, header {len(header)}")
    text = cells[header.index(column)].rstrip("x")
    try:
        return float(text)
    except ValueError:
        raise FormatError(f"row {cells[0]!r}, column {column!r}: {text!r} is no number") from None


def read_decide(out: str) -> Reading:
    header, rows = read_table(out, "per alert", "p99")
    own = "Terry's own (total"
    plain_header, plain_rows = read_table(out, "by hand", "median")
    return {
        Figure("decide: Terry's own part p50", "s"): cell(header, rows, own, "p50"),
        Figure("decide: Terry's own part p99", "s"): cell(header, rows, own, "p99"),
        Figure("decide: plain ansible-playbook --check --diff", "s", control=True): cell(
            plain_header, plain_rows, "plain ansible-playbook", "median"
        ),
    }


def read_apply(out: str) -> Reading:
    header, rows = read_table(out, "way", "median s")
    plain = cell(header, rows, "plain ansible-playbook", "median s")
    applier = cell(header, rows, "Terry AnsibleRunnerApplier", "median s")
    return {
        Figure("apply: Terry applier, median", "s"): applier,
        Figure("apply: Terry applier ÷ plain", "x"): applier / plain,
        Figure("apply: terry proposals apply (CLI), median", "s"): cell(
            header, rows, "terry proposals apply", "median s"
        ),
        Figure("apply: plain ansible-playbook, median", "s", control=True): plain,
    }


def read_ingest(out: str) -> Reading:
    header, rows = read_table(out, "target", "accepted/s")
    reading: Reading = {
        Figure("ingest: Starlette 202, no store", "alerts/s", True, control=True): cell(
            header, rows, "baseline: Starlette", "accepted/s"
        )
    }
    serves = [label for label in rows if label.startswith("terry serve")]
    if not serves:
        raise FormatError("expected rows starting 'terry serve' in the table 'target'")
    for label in serves:
        short = label.removeprefix("terry serve, ")
        reading[Figure(f"ingest: {short}", "alerts/s", True)] = cell(
            header, rows, label, "accepted/s"
        )
        reading[Figure(f"ingest: {short}, p99", "ms")] = cell(header, rows, label, "p99 ms")
    return reading


SCRIPTS: dict[str, tuple[str, Callable[[str], Reading]]] = {
    "decide": ("decide.py", read_decide),
    "apply_overhead": ("apply_overhead.py", read_apply),
    "ingest": ("ingest.py", read_ingest),
}


# -- running ---------------------------------------------------------------------------------
@dataclass
class Results:
    """Every round's reading per (script, side name), and what went wrong where."""

    readings: dict[tuple[str, str], list[Reading]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def run_once(
    key: str, where: Side, quick: bool, logs: Path | None, tag: str, results: Results
) -> None:
    script, reader = SCRIPTS[key]
    path = where.root / "bench" / script
    if not path.exists():
        results.errors.append(f"{where.label}: no bench/{script} at this revision")
        print(f"  {tag}  {script:<18} {where.label}: no such script", flush=True)
        return
    argv = [PYTHON, str(path), *(["--quick"] if quick else [])]
    print(f"  {tag}  {script:<18} {where.label} ...", end="", flush=True)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=where.root, env=where.env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    print(f" {elapsed:.0f} s, exit {done.returncode}", flush=True)
    if logs:
        name = f"{key}-{where.name}-{tag.replace('/', 'of').replace(' ', '')}.log"
        (logs / name).write_text(f"$ {' '.join(argv)}\n{done.stdout}\n--- stderr\n{done.stderr}")
    try:
        reading = reader(done.stdout)
    except FormatError as err:
        tail = "\n".join(f"      {line}" for line in (done.stderr or done.stdout).splitlines()[-8:])
        results.errors.append(
            f"{script} on {where.label} ({tag}, exit {done.returncode}): {err}\n"
            f"    last lines of its {'stderr' if done.stderr else 'stdout'}:\n{tail}"
        )
        return
    if done.returncode != 0:
        results.warnings.append(
            f"{script} on {where.label} exited {done.returncode} but printed its figures"
        )
    results.readings.setdefault((key, where.name), []).append(reading)


def ratio(figure: Figure, base: float, new: float) -> float:
    """new ÷ base for times, base ÷ new for rates: above 1 is always slower."""
    num, den = (base, new) if figure.higher_is_better else (new, base)
    return num / den if den else math.nan


def fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit == "alerts/s":
        return f"{value:.0f}"
    return f"{value:.3f}"


def report(keys: list[str], base: Side, new: Side, results: Results, rounds: int) -> int:
    """Print the table; the count of scripts that could not be compared."""
    rows: list[list[str]] = []
    drifted: list[str] = []  # control rows that moved more than 5% between the sides
    missing = 0
    for key in keys:
        olds = results.readings.get((key, "base"), [])
        news = results.readings.get((key, "new"), [])
        if not olds or not news:
            missing += 1
            continue
        figures = list(dict.fromkeys([f for r in olds + news for f in r]))
        for figure in figures:
            a = [r[figure] for r in olds if figure in r]
            b = [r[figure] for r in news if figure in r]
            med_a = statistics.median(a) if a else math.nan
            med_b = statistics.median(b) if b else math.nan
            r = ratio(figure, med_a, med_b)
            per_round = [ratio(figure, x, y) for x, y in zip(a, b, strict=False)]
            spread = f"{min(per_round):.3f}-{max(per_round):.3f}" if len(per_round) > 1 else ""
            better = "higher" if figure.higher_is_better else "lower"
            if figure.control:
                target, verdict = "(control)", "-"
                if not math.isnan(r) and not 1 / TARGET <= r <= TARGET:
                    drifted.append(f"{figure.name} {r:.3f}")
            elif math.isnan(r):
                target, verdict = "within 5%", "not measured"
            else:
                target = "within 5%"
                verdict = "met" if r <= TARGET else "MISSED"
                verdict += " (faster)" if r < 1 / TARGET else ""
            rows.append(
                [
                    figure.name,
                    f"{figure.unit}, {better} better",
                    fmt(med_a, figure.unit),
                    fmt(med_b, figure.unit),
                    "-" if math.isnan(r) else f"{r:.3f}",
                    spread,
                    target,
                    verdict,
                ]
            )
    print(f"\ncompare: median of {rounds} round(s) per side, interleaved")
    print(f"  {base.label}\n  {new.label}")
    headers = ["figure", "unit", "base", "new", "ratio", "per round", "target", "verdict"]
    if rows:
        print(table(headers, rows))
    print(
        "ratio: new ÷ base for times, base ÷ new for alerts/s, so above 1 is slower;"
        f" target: ratio ≤ {TARGET} (within 5%)"
    )
    if drifted:
        print(
            "warning: a control (no Terry code) moved more than 5% between the sides: "
            + ", ".join(drifted)
            + "; the machine's load changed, so read Terry's ratios against it or rerun"
            " with more --rounds on a quieter machine"
        )
    for note in results.warnings:
        print(f"warning: {note}")
    for message in results.errors:
        print(f"NOT MEASURED: {message}")
    goals = [r for r in rows if r[6] == "within 5%" and r[7] != "not measured"]
    missed = [r[0] for r in goals if r[7].startswith("MISSED")]
    print(
        f"target within 5%: {len(goals) - len(missed)}/{len(goals)} figures met"
        + (f"; missed: {', '.join(missed)}" if missed else "")
    )
    return missing


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns two spaces apart, the first left-aligned (as ``_common.table``)."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} CPUs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base",
        help="git revision to compare against (default: origin/main if it exists, else HEAD~1)",
    )
    parser.add_argument("--new", help="git revision to measure (default: the working tree)")
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("--rounds", type=int, default=2, help="runs per script and side (2)")
    parser.add_argument("--only", help="comma-separated: " + ",".join(SCRIPTS))
    parser.add_argument("--logs", type=Path, help="write every run's output into DIR")
    opts = parser.parse_args()
    keys = list(SCRIPTS)
    if opts.only:
        keys = [k.strip().removesuffix(".py") for k in opts.only.split(",") if k.strip()]
        unknown = [k for k in keys if k not in SCRIPTS]
        if unknown:
            parser.error(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}")
    if opts.rounds < 1:
        parser.error("--rounds must be at least 1")
    if opts.logs:
        opts.logs.mkdir(parents=True, exist_ok=True)

    results = Results()
    try:
        with ExitStack() as stack:
            base = stack.enter_context(side("base", opts.base or default_base()))
            new = stack.enter_context(side("new", opts.new))
            print(f"  at the start: {load_note()}")
            for s in (base, new):
                print(f"  {s.label}: import terry -> {s.check_import()}")
            if new.rev is None and new.dirty:
                print(
                    "  (the working tree is read as it is at each run; edits during the"
                    " comparison land in whichever runs follow them)"
                )
            for r in range(opts.rounds):
                order = (base, new) if r % 2 == 0 else (new, base)
                for key in keys:
                    for where in order:
                        tag = f"round {r + 1}/{opts.rounds}"
                        run_once(key, where, opts.quick, opts.logs, tag, results)
            print(f"  at the end: {load_note()}")
            missing = report(keys, base, new, results, opts.rounds)
    except RevisionError as err:
        print(f"compare: {err}", file=sys.stderr)
        return 2
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
