"""How long the ``terry`` CLI takes to start, next to ``ansible-playbook --version``.

Why: every ``terry`` command (and every CLI step of ``apply_overhead.py``) pays Python
importing the CLI before it does anything; on a 2-core machine that was ~0.8-3 s for
``terry --help``, more than ansible itself takes to start. An operator types these commands
by hand, so their start-up is what the tool feels like.

Measures, as subprocesses of the venv's binaries, median of five runs (``--runs``; 3 with
``--quick``) after one uncounted warm-up, all interleaved round by round (the order rotates
each round) so machine load falls on every command alike:

- ``terry --help``;
- ``terry --repo R incidents list`` and ``terry --repo R proposals show ID``: read commands
  on a throw-away repository R (``terry init``, then one DiskUsageHigh alert fed with
  ``terry alert ingest --no-apply``: one incident and one decided proposal, ~6 s of setup;
  should that fail, the incident alone, with ``incidents show``);
- baseline in the same run: ``ansible-playbook --version`` (a Python CLI of the same venv),
  and ``python -c pass`` (the interpreter alone: the floor for any Python CLI).

Targets: ``terry --help`` at most 1.0x ``ansible-playbook --version``; the read commands at
most 1.5x. Then the ten largest cumulative import times of ``python -X importtime -c
'import terry.cli'`` (what ``--help`` pays) and of ``python -X importtime -m terry --repo R
incidents list`` (what a read command pays), so a reader sees where the time goes.

``--base REV`` measures another revision in the same run, through a throw-away ``git
worktree`` and ``PYTHONPATH`` (``_revisions.py``, as ``compare.py``), each with its own
repository R made by its own ``terry``: before and after side by side. Imports nothing from
``terry`` (module paths move during refactors); everything runs as a subprocess.

    python bench/cli_start.py [--quick] [--runs N] [--base REV] [--new REV]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from _revisions import BIN, PYTHON, RevisionError, Side, side

TERRY = str(BIN / "terry")
ANSIBLE_PLAYBOOK = str(BIN / "ansible-playbook")
TARGETS = {"help": 1.0, "incidents list": 1.5, "proposals show": 1.5, "incidents show": 1.5}

PAYLOAD = {  # one firing DiskUsageHigh alert, Alertmanager webhook v4 (as bench/_common.py)
    "version": "4",
    "groupKey": '{}:{alertname="DiskUsageHigh"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "terry",
    "groupLabels": {"alertname": "DiskUsageHigh"},
    "commonLabels": {},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "DiskUsageHigh", "host": "web-01", "mountpoint": "/srv/data"},
            "annotations": {"summary": "/srv/data on web-01 is 92% full"},
            "startsAt": "2026-12-04T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": "bench-cli-start-0001",
        }
    ],
}


@dataclass
class Command:
    """One thing to time: its argv, cwd and env, the side it belongs to (None: baseline)."""

    key: str  # "help", "incidents list", ... or "ansible", "python"
    shown: str  # what the table prints
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    where: Side | None = None
    seconds: list[float] = field(default_factory=list)
    error: str = ""

    def run(self) -> float:
        """Wall seconds of one run; sets ``error`` when it exits non-zero."""
        started = time.perf_counter()
        done = subprocess.run(self.argv, cwd=self.cwd, env=self.env, capture_output=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0 and not self.error:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["-"]
            self.error = f"{self.shown} exited {done.returncode}: {tail[0]}"
        return elapsed


def short(where: Side) -> str:
    return f"{where.name} {where.commit}" + (" +wt" if where.rev is None and where.dirty else "")


def run_terry(where: Side, *args: str) -> subprocess.CompletedProcess[str]:
    """``terry ARGS`` under this side's env; RuntimeError with its stderr on failure."""
    done = subprocess.run(
        [TERRY, *args], cwd=where.root, env=where.env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(
            f"{short(where)}: terry {' '.join(args)} exited {done.returncode}:\n{tail}"
        )
    return done


def prepare(where: Side, scratch: Path) -> list[Command]:
    """A repository made by this side's ``terry`` with one incident and proposal; the
    side's commands to time."""
    started = time.perf_counter()
    repo = scratch / "ops"
    run_terry(where, "init", str(repo))
    alerts = scratch / "alert.json"
    alerts.write_text(json.dumps(PAYLOAD), encoding="utf-8")
    r = ["--repo", str(repo)]
    commands = [
        ("help", "terry --help", ["--help"]),
        ("incidents list", "terry --repo R incidents list", [*r, "incidents", "list"]),
    ]
    try:
        done = run_terry(where, *r, "alert", "ingest", "--no-apply", "-o", "json", str(alerts))
        proposal = json.loads(done.stdout)["proposals"][0]["proposal_id"]
        commands.append(
            (
                "proposals show",
                f"terry --repo R proposals show {proposal}",
                [*r, "proposals", "show", str(proposal)],
            )
        )
        made = f"incident and proposal {proposal}"
    except (RuntimeError, KeyError, IndexError, ValueError) as err:
        print(f"  {short(where)}: no proposal ({err}); timing `incidents show` instead")
        done = run_terry(where, *r, "alert", "ingest", "--no-remediate", "-o", "json", str(alerts))
        incident = json.loads(done.stdout)["alerts"][0]["incident_id"]
        commands.append(
            (
                "incidents show",
                f"terry --repo R incidents show {incident}",
                [*r, "incidents", "show", str(incident)],
            )
        )
        made = f"incident {incident}"
    print(
        f"  {short(where)}: repository R with {made} made in {time.perf_counter() - started:.1f} s"
    )
    env = where.env()
    return [
        Command(key, shown, [TERRY, *args], where.root, env, where) for key, shown, args in commands
    ]


Imported = tuple[str, str, float, float]  # module, imported by, cumulative ms, self ms


def import_times(where: Side, args: list[str], top: int = 10) -> list[Imported]:
    """The ``top`` largest cumulative import times of ``python -X importtime ARGS``.

    ``-X importtime`` prints a module when its import ends, so its children come before it,
    indented two more spaces: a module's importer is the first later line indented less."""
    done = subprocess.run(
        [PYTHON, "-X", "importtime", *args],
        cwd=where.root,
        env=where.env(),
        capture_output=True,
        text=True,
    )
    parsed: list[tuple[int, str, float, float]] = []  # depth, module, cumulative, self
    for line in done.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|", 2)
        if not own.strip().isdigit():  # the header line
            continue
        depth = len(name) - len(name.lstrip())
        parsed.append((depth, name.strip(), int(cumulative) / 1000, int(own) / 1000))
    rows: list[Imported] = []
    for i, (depth, name, cumulative, own) in enumerate(parsed):
        parent = next((later[1] for later in parsed[i + 1 :] if later[0] < depth), "-")
        rows.append((name, parent, cumulative, own))
    if done.returncode != 0 or not rows:
        tail = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
        raise RuntimeError(
            f"python -X importtime {' '.join(args)} exited {done.returncode}: "
            + (tail[-1] if tail else "no import times printed")
        )
    return sorted(rows, key=lambda row: -row[2])[:top]


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
    parser.add_argument("--quick", action="store_true", help="3 runs per command")
    parser.add_argument("--runs", type=int, help="timed runs per command (default 5)")
    parser.add_argument("--base", help="also measure this git revision, through a worktree")
    parser.add_argument("--new", help="git revision to measure (default: the working tree)")
    opts = parser.parse_args()
    runs = opts.runs or (3 if opts.quick else 5)
    if runs < 1:
        parser.error("--runs must be at least 1")

    print(f"  at the start: {load_note()}")
    plain_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    plain_env.pop("PYTHONPATH", None)
    here = Path.cwd()
    ansible = Command(
        "ansible", "ansible-playbook --version", [ANSIBLE_PLAYBOOK, "--version"], here, plain_env
    )
    floor = Command(
        "python", "python -c pass (interpreter)", [PYTHON, "-c", "pass"], here, plain_env
    )
    try:
        with ExitStack() as stack:
            sides = [stack.enter_context(side("new", opts.new))]
            if opts.base:
                sides.insert(0, stack.enter_context(side("base", opts.base)))
            commands = [ansible, floor]
            unprepared: list[str] = []
            for where in sides:
                print(f"  {where.label}: import terry -> {where.check_import()}")
                scratch = Path(tempfile.mkdtemp(prefix=f"terry-bench-cli-{where.name}-"))
                stack.callback(shutil.rmtree, scratch, True)
                try:
                    commands += prepare(where, scratch)
                except RuntimeError as err:  # measure the other side and the baselines
                    unprepared.append(str(err))
            for command in commands:  # warm-up: bytecode, page cache, the store's migrations
                command.run()
            for r in range(runs):
                turn = r % len(commands)
                for command in commands[turn:] + commands[:turn]:
                    command.seconds.append(command.run())
                print(f"  round {r + 1}/{runs} done", flush=True)
            # What every command pays (importing the CLI), and what a read command imports on
            # top once the CLI loads its commands lazily: ``python -m terry``, same code path.
            imports: dict[tuple[str, str], list[Imported] | str] = {}
            for where in sides:
                probes = [("import terry.cli", ["-c", "import terry.cli"])]
                probes += [
                    ("python -m terry --repo R incidents list", ["-m", "terry", *c.argv[1:]])
                    for c in commands
                    if c.where is where and c.key == "incidents list"
                ]
                for what, args in probes:
                    try:
                        imports[short(where), what] = import_times(where, args)
                    except RuntimeError as err:
                        imports[short(where), what] = str(err)
    except (RevisionError, RuntimeError) as err:
        print(f"cli_start: {err}", file=sys.stderr)
        return 2
    print(f"  at the end: {load_note()}")

    base = statistics.median(ansible.seconds)
    print(f"\ncli start: median of {runs} runs after 1 warm-up, interleaved, seconds")
    for where in sides:
        print(f"  {short(where)} = {where.label}")
    rows, verdicts = [], []
    for c in commands:
        med = statistics.median(c.seconds)
        ratio = med / base
        target = TARGETS.get(c.key)
        verdict = "-"
        if c.error:
            verdict = "FAILED"
        elif target is not None:
            verdict = "met" if ratio <= target else "NOT met"
            who = short(c.where) if c.where else "baseline"
            verdicts.append(f"{c.shown} ({who}): {ratio:.2f}x, target ≤ {target:.1f}x: {verdict}")
        rows.append(
            [
                c.shown,
                short(c.where) if c.where else "baseline",
                f"{med:.3f}",
                f"{min(c.seconds):.3f}",
                f"{max(c.seconds):.3f}",
                f"{ratio:.2f}x",
                f"≤ {target:.1f}x" if target is not None else "",
                verdict,
            ]
        )
    print(
        table(
            ["command", "revision", "median", "min", "max", "÷ ansible", "target", "verdict"], rows
        )
    )
    if len(sides) == 2:
        print(f"\n{short(sides[1])} ÷ {short(sides[0])}, median against median:")
        olds = {c.key: c for c in commands if c.where is sides[0]}
        for c in (c for c in commands if c.where is sides[1]):
            if c.key in olds:
                old, new = statistics.median(olds[c.key].seconds), statistics.median(c.seconds)
                print(f"  {c.shown}: {new / old:.2f}x ({old:.3f} s → {new:.3f} s)")
    for (name, what), top in imports.items():
        if isinstance(top, str):
            print(f"\n{what} ({name}): NOT MEASURED: {top}")
            continue
        print(f"\n{what} ({name}): the {len(top)} largest cumulative import times, ms")
        print(
            table(
                ["module", "imported by", "cumulative", "self"],
                [[m, by, f"{cum:.1f}", f"{own:.1f}"] for m, by, cum, own in top],
            )
        )
    failed = [c.error for c in commands if c.error] + unprepared
    print()
    for line in verdicts:
        print(f"target: {line}")
    for error in failed:
        print(f"NOT MEASURED: {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
