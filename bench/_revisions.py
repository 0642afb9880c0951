"""Run one revision of Terry next to another in the same run: throw-away git worktrees.

Not a benchmark itself; ``compare.py`` and ``cli_start.py`` import it as ``_revisions``.

Why a worktree and ``PYTHONPATH`` instead of a second virtualenv: the venv installs Terry in
editable mode from this checkout (a ``.pth`` line naming it), so the same interpreter and the
same third-party packages serve both sides, and only Terry's own code differs. ``PYTHONPATH``
is searched before that ``.pth`` line, so with ``PYTHONPATH=<worktree>`` ``import terry``
(and the venv's ``terry`` console script) load the worktree's copy. ``Side.check_import``
proves it at the start of every run rather than trusting it.

Deliberately imports nothing from ``terry`` or ``_common`` (which imports ``terry``): module
paths inside ``terry/`` move during refactors, and this file must keep working across them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent  # the working tree this file lives in (/work/main)
_VENV_PYTHON = CHECKOUT / ".venv" / "bin" / "python"
# The venv's interpreter even when the script was started with another one; bin/ also
# holds the ``terry`` and ``ansible-playbook`` console scripts.
PYTHON = str(_VENV_PYTHON if _VENV_PYTHON.exists() else Path(sys.executable))
BIN = Path(PYTHON).parent


class RevisionError(RuntimeError):
    """A revision could not be resolved, checked out, or does not import its own Terry."""


def git(*args: str, cwd: Path = CHECKOUT) -> str:
    """``git -C CHECKOUT ARGS``; its stdout stripped, RevisionError with stderr on failure."""
    done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RevisionError(f"git {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


def default_base() -> str:
    """``origin/main`` when that ref exists, else ``HEAD~1``."""
    probe = subprocess.run(
        ["git", "-C", str(CHECKOUT), "rev-parse", "--verify", "--quiet", "origin/main^{commit}"],
        capture_output=True,
        text=True,
    )
    return "origin/main" if probe.returncode == 0 else "HEAD~1"


@dataclass(frozen=True)
class Side:
    """One version of Terry: where its ``terry/`` and ``bench/`` are, and how to run it."""

    name: str  # "base" or "new"
    rev: str | None  # what the user asked for; None: the working tree as it is
    root: Path  # the directory holding terry/ and bench/
    commit: str  # short hash (of HEAD, for the working tree)
    dirty: int = 0  # working tree only: files git reports as changed

    @property
    def label(self) -> str:
        """``base a1275c7 (HEAD~1)`` or ``new: working tree on a1275c7, 42 changed files``."""
        if self.rev is None:
            state = f", {self.dirty} changed files" if self.dirty else ", clean"
            return f"{self.name}: working tree on {self.commit}{state}"
        shown = "" if self.rev.startswith(self.commit) else f" ({self.rev})"
        return f"{self.name}: {self.commit}{shown}"

    def env(self) -> dict[str, str]:
        """This process's environment with this side's Terry first on ``PYTHONPATH`` and the
        venv's bin/ first on ``PATH`` (ansible-runner looks ``ansible-playbook`` up there)."""
        env = dict(os.environ)
        rest = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = str(self.root) + (os.pathsep + rest if rest else "")
        env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
        env["VIRTUAL_ENV"] = str(BIN.parent)
        env.pop("PYTHONHOME", None)
        return env

    def check_import(self) -> str:
        """``import terry; print(terry.__file__)`` under this side's env and cwd; the path.

        RevisionError when it does not resolve inside ``root``: the comparison would then
        measure the wrong code and every ratio would be a lie."""
        done = subprocess.run(
            [PYTHON, "-c", "import terry; print(terry.__file__)"],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
        )
        where = done.stdout.strip()
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
            raise RevisionError(f"{self.label}: `import terry` failed: {tail[0]}")
        if not Path(where).resolve().is_relative_to(self.root.resolve()):
            raise RevisionError(f"{self.label}: `import terry` loads {where}, not {self.root}")
        return where


def _sigterm_to_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def side(name: str, rev: str | None) -> Iterator[Side]:
    """The working tree (``rev`` None) or a detached worktree of ``rev`` under /tmp.

    The worktree is removed afterwards, also on an error, Ctrl-C or SIGTERM (turned into
    SystemExit here so ``finally`` runs); nothing in the checkout's working tree is touched.
    """
    if rev is None:
        status = git("status", "--porcelain", "--untracked-files=no")
        yield Side(
            name,
            None,
            CHECKOUT,
            git("rev-parse", "--short", "HEAD"),
            len(status.split("\n")) if status else 0,
        )
        return
    try:
        commit = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except RevisionError:
        raise RevisionError(f"{rev!r} names no commit in {CHECKOUT}") from None
    scratch = Path(tempfile.mkdtemp(prefix=f"terry-bench-{name}-"))
    tree = scratch / "tree"
    previous = signal.signal(signal.SIGTERM, _sigterm_to_exit)
    try:
        git("worktree", "add", "--detach", str(tree), commit)
        yield Side(name, rev, tree, git("rev-parse", "--short", commit))
    finally:
        try:
            if tree.exists():
                git("worktree", "remove", "--force", str(tree))
        except RevisionError as err:  # drop the files; git forgets the entry on prune
            print(f"  warning: {err}", file=sys.stderr)
            shutil.rmtree(tree, ignore_errors=True)
            subprocess.run(["git", "-C", str(CHECKOUT), "worktree", "prune"], check=False)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            signal.signal(signal.SIGTERM, previous)
