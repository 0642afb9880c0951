"""The GitOps repository: branches, commits and merges made with git plumbing.

Terry never checks out a branch in the operator's working tree. Commits are built in a
private index and moved onto refs with compare-and-swap (``update-ref NEW OLD``), so two
Terry processes cannot lose each other's merges. Trees are read by exporting a commit
into ``.terry/trees/<sha>`` — the exact bytes that were checked, approved and merged.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import git

from terry.errors import BranchTaken, GitError, InputError, MergeConflict

__all__ = ["Identity", "Repo"]


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    def env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }


TERRY = Identity("Terry", "terry@localhost")


class _RefMoved(Exception):
    """main moved between reading it and updating it."""


def _within(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's ``data`` filter, skipping what it refuses (a link out of the tree) rather
    than refusing the whole commit for it."""
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError:
        return None


class Repo:
    """A GitOps repository on disk."""

    def __init__(self, path: Path, *, main_branch: str = "main") -> None:
        self.path = path.resolve()
        self.main_branch = main_branch
        try:
            self._repo = git.Repo(self.path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise GitError(f"{self.path} is not a git repository") from exc

    # -- creating ---------------------------------------------------------------------
    @classmethod
    def init(cls, path: Path, *, main_branch: str = "main") -> Repo:
        path.mkdir(parents=True, exist_ok=True)
        try:
            git.Repo(path)
        except git.InvalidGitRepositoryError:
            git.Repo.init(path, initial_branch=main_branch)
        return cls(path, main_branch=main_branch)

    def _git(self, *args: str, env: dict[str, str] | None = None, **kwargs: object) -> str:
        try:
            return self._repo.git.execute(
                ["git", *args], env={**os.environ, **(env or {})}, **kwargs
            )  # type: ignore[call-overload,no-any-return]
        except git.GitCommandError as exc:
            stderr = (exc.stderr or "").strip().splitlines()
            detail = stderr[-1] if stderr else str(exc)
            raise GitError(f"git {args[0]}: {detail.removeprefix('stderr: ').strip()}") from exc

    def commit_paths(self, paths: list[str], message: str, *, identity: Identity = TERRY) -> str:
        """Commit these paths of the working tree on the checked-out branch (``terry init``)."""
        self._git("add", "--", *paths)
        if not self._git("diff", "--cached", "--name-only", "--", *paths):
            return self.head()
        self._git("commit", "--quiet", "-m", message, "--", *paths, env=identity.env())
        return self.head()

    # -- reading ------------------------------------------------------------------------
    def head(self, ref: str | None = None) -> str:
        return self._git("rev-parse", "--verify", f"{ref or self.main_branch}^{{commit}}")

    def ref_exists(self, ref: str) -> bool:
        try:
            self._git("rev-parse", "--verify", "--quiet", f"refs/heads/{ref}")
            return True
        except GitError:
            return False

    def last_change(self, path: str, ref: str | None = None) -> str | None:
        """The newest commit on ``ref`` that touched ``path``."""
        out = self._git("log", "-1", "--format=%H", ref or self.main_branch, "--", path)
        return out or None

    def object_ids(self, sha: str, paths: list[str]) -> dict[str, str | None]:
        """The object id of each path in commit ``sha`` (None where it does not exist): equal
        ids mean equal content, so what was read from one can be reused for the other."""
        lines = self._git(
            "cat-file", "--batch-check", istream=_stdin("".join(f"{sha}:{p}\n" for p in paths))
        ).splitlines()
        return {
            path: (None if line.endswith(" missing") else line.split()[0])
            for path, line in zip(paths, lines, strict=True)
        }

    def read_text(self, sha: str, path: str) -> str | None:
        """The file at ``path`` in commit ``sha`` (None when it does not exist there)."""
        if self.object_ids(sha, [path])[path] is None:
            return None
        return self._git("show", f"{sha}:{path}", strip_newline_in_stdout=False)

    def commits_touching(
        self, older: str, newer: str, paths: list[str], *, limit: int = 20
    ) -> list[tuple[str, str]]:
        """(sha, subject) of commits after ``older`` up to ``newer`` that changed ``paths``."""
        out = self._git(
            "log", f"--max-count={limit}", "--format=%H%x1f%s", f"{older}..{newer}", "--", *paths
        )
        found = [line.partition("\x1f") for line in out.splitlines()]
        return [(sha, subject) for sha, _sep, subject in found if sha]

    def files(self, commit: str, paths: list[str]) -> set[str]:
        """The files of ``commit`` at or under ``paths``."""
        return set(self._git("ls-tree", "-r", "--name-only", commit, "--", *paths).splitlines())

    def changed_paths(self, older: str, newer: str) -> list[str]:
        """The paths that differ between two commits."""
        return self._git("diff", "--name-only", older, newer).splitlines()

    def is_ancestor(self, older: str, newer: str) -> bool:
        """Whether ``newer`` contains ``older`` (equal commits count)."""
        try:
            self._git("merge-base", "--is-ancestor", older, newer)
            return True
        except GitError:
            return False

    def message(self, sha: str) -> str:
        return self._git("log", "-1", "--format=%B", sha)

    def user_name(self) -> str | None:
        try:
            return self._git("config", "user.name") or None
        except GitError:
            return None

    def tree(self, sha: str) -> Path:
        """A read-only export of commit ``sha`` under ``.terry/trees`` (cached by sha). A
        committed link that leads out of the tree (``/etc/passwd``, ``../../x``) is left out:
        nothing read from an export reaches past it."""
        sha = self.head(sha)
        target = self.path / ".terry" / "trees" / sha
        if target.is_dir():
            os.utime(target)  # in use: keep it from being pruned
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=target.parent))
        try:
            data = self._repo.git.execute(
                ["git", "archive", "--format=tar", sha], stdout_as_string=False
            )
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:  # type: ignore[arg-type]
                archive.extractall(staging, filter=_within)
            staging.rename(target)
            self._prune_trees(target.parent, keep=target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not target.is_dir():
                raise
        except git.GitCommandError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise GitError(f"git archive {sha}: {exc.stderr}") from exc
        return target

    @staticmethod
    def _prune_trees(directory: Path, *, keep: Path, max_age: float = 6 * 3600) -> None:
        """Drop exports unused for ``max_age`` seconds (far longer than any run may take);
        a later run of an old commit exports it again."""
        cutoff = time.time() - max_age
        for old in directory.iterdir():
            if old == keep or old.name.startswith("."):
                continue
            try:
                if old.stat().st_mtime < cutoff:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                continue

    # -- writing ------------------------------------------------------------------------
    def check_branch_name(self, branch: str) -> str:
        if branch.startswith("-"):
            raise InputError(f"branch name {branch!r} may not start with '-'")
        try:
            self._git("check-ref-format", "--branch", branch)
        except GitError as exc:
            raise InputError(f"branch name {branch!r} is not valid") from exc
        return branch

    def free_branch(self, branch: str) -> str:
        """``branch``, or ``branch-2``, ``-3``... if it is taken."""
        candidate, n = branch, 1
        while self.ref_exists(candidate):
            n += 1
            candidate = f"{branch}-{n}"
        return self.check_branch_name(candidate)

    def commit_files(
        self,
        *,
        branch: str,
        files: dict[str, str | None],
        message: str,
        base: str | None = None,
        identity: Identity = TERRY,
    ) -> str:
        """Create ``branch`` from ``base`` (default: main) with ``files`` written (``None``:
        deleted), in one commit. Raises BranchTaken if ``branch`` exists by then."""
        self.check_branch_name(branch)
        commit = self._commit_tree(self.head(base), files, message, identity)
        try:  # compare-and-swap against "no such branch": never moves another's branch
            self._git("update-ref", f"refs/heads/{branch}", commit, "0" * 40)
        except GitError as exc:
            if self.ref_exists(branch):
                raise BranchTaken(f"branch {branch} was created meanwhile") from exc
            raise
        return commit

    def commit_on(
        self,
        *,
        branch: str,
        tip: str,
        files: dict[str, str | None],
        message: str,
        identity: Identity = TERRY,
    ) -> str:
        """One more commit on ``branch``, on top of ``tip`` (its commit as the caller read
        it), with ``files`` written. Raises GitError if the branch moved since (a
        compare-and-swap: a commit someone else pushed there is never lost)."""
        self.check_branch_name(branch)
        commit = self._commit_tree(tip, files, message, identity)
        self._git("update-ref", f"refs/heads/{branch}", commit, tip)
        return commit

    def set_branch(self, branch: str, to: str, *, was: str) -> None:
        """Move ``branch`` to ``to`` if it is still at ``was`` (compare-and-swap); GitError
        otherwise."""
        self.check_branch_name(branch)
        self._git("update-ref", f"refs/heads/{branch}", to, was)

    def _commit_tree(
        self, parent: str, files: dict[str, str | None], message: str, identity: Identity
    ) -> str:
        """A commit of ``parent``'s tree with ``files`` written, on no branch yet."""
        with tempfile.TemporaryDirectory(prefix="terry-index-") as scratch:
            env = {**identity.env(), "GIT_INDEX_FILE": str(Path(scratch) / "index")}
            self._git("read-tree", parent, env=env)
            for path, text in files.items():
                if text is None:
                    self._git("update-index", "--force-remove", path, env=env)
                    continue
                blob = self._git(
                    "hash-object", "-w", "--stdin", "--path", path, istream=_stdin(text)
                )
                self._git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = self._git("write-tree", env=env)
        return self._git(
            "commit-tree",
            tree,
            "-p",
            parent,
            "-F",
            "-",
            env=identity.env(),
            istream=_stdin(message),
        )

    def add_note(self, sha: str, text: str, *, identity: Identity = TERRY) -> None:
        """Attach ``text`` to commit ``sha`` under ``refs/notes/terry`` (replacing any note):
        ``git log --notes=terry`` then shows each proposal's decision, merged or not."""
        self._git(
            "notes",
            "--ref=terry",
            "add",
            "-f",
            "-F",
            "-",
            sha,
            env=identity.env(),
            istream=_stdin(text),
        )

    def note(self, sha: str) -> str | None:
        try:
            return self._git("notes", "--ref=terry", "show", sha)
        except GitError:
            return None

    def merge(
        self,
        branch: str,
        *,
        message: str,
        commit: str | None = None,
        identity: Identity = TERRY,
    ) -> str:
        """Merge ``branch`` into main with a merge commit; returns the merge commit.

        ``commit`` merges that commit of the branch (the one that was dry-run and gated)
        rather than whatever its tip is now. When another writer moves main in between, the
        compare-and-swap fails and the merge is redone on the new main (a few times), so no
        writer's merge is lost.
        """
        for attempt in range(5):
            try:
                return self._merge_once(branch, commit=commit, message=message, identity=identity)
            except _RefMoved as exc:
                if attempt == 4:
                    raise GitError(
                        f"{self.main_branch} kept moving; merge of {branch} gave up"
                    ) from exc
        raise AssertionError("unreachable")

    def _merge_once(
        self, branch: str, *, commit: str | None, message: str, identity: Identity
    ) -> str:
        old = self.head()
        theirs = self.head(commit or branch)
        tree = self._merge_tree(branch, old, theirs)
        merged = self._git(
            "commit-tree",
            tree,
            "-p",
            old,
            "-p",
            theirs,
            "-F",
            "-",
            env=identity.env(),
            istream=_stdin(message),
        )
        try:
            self._git("update-ref", f"refs/heads/{self.main_branch}", merged, old)
        except GitError as exc:
            if self.head() != old:
                raise _RefMoved from exc
            raise
        self._sync_worktree(old, merged)
        return merged

    def check_merge(self, commit: str, *, branch: str) -> None:
        """MergeConflict naming the paths when ``commit`` (of ``branch``) cannot be merged
        into main as main now is; nothing is written."""
        self._merge_tree(branch, self.head(), self.head(commit))

    def _merge_tree(self, branch: str, ours: str, theirs: str) -> str:
        """The tree of merging ``theirs`` into ``ours``; MergeConflict naming the paths both
        changed when git cannot merge them by itself."""
        args = ["merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs]
        status, out, err = self._repo.git.execute(
            ["git", *args], with_extended_output=True, with_exceptions=False
        )  # type: ignore[call-overload]
        lines = str(out).splitlines()
        if status == 0 and lines:
            return lines[0]
        if status == 1 and len(lines) > 1:  # the tree, then each conflicted path
            paths = tuple(dict.fromkeys(lines[1:]))
            raise MergeConflict(
                f"cannot merge {branch} into {self.main_branch}: {self.main_branch} changed "
                f"{', '.join(paths)} since the branch was made (a conflict)",
                paths,
            )
        detail = (str(err).strip().splitlines() or ["no output"])[-1]
        raise GitError(f"git merge-tree: {detail}")

    # -- a remote (a forge) ------------------------------------------------------------------
    def push_branch(self, remote: str, branch: str, *, env: dict[str, str] | None = None) -> None:
        """Publish ``branch`` on ``remote`` (never forced: a branch someone else moved there
        makes this fail instead of being overwritten)."""
        self._git(
            "push",
            "--quiet",
            "--porcelain",
            remote,
            f"refs/heads/{branch}:refs/heads/{branch}",
            env=_remote_env(env),
        )

    def push_main(self, remote: str, *, env: dict[str, str] | None = None) -> None:
        ref = f"refs/heads/{self.main_branch}"
        self._git("push", "--quiet", "--porcelain", remote, f"{ref}:{ref}", env=_remote_env(env))

    def fetch_main(self, remote: str, *, env: dict[str, str] | None = None) -> str:
        """Bring main from ``remote`` and fast-forward the local main to it; returns main.

        Main on the forge is the truth: a local main that is not an ancestor of it (commits
        never pushed) is an error, not something to overwrite.
        """
        tracking = f"refs/remotes/{remote}/{self.main_branch}"
        self._git(
            "fetch",
            "--quiet",
            "--no-tags",
            remote,
            f"+refs/heads/{self.main_branch}:{tracking}",
            env=_remote_env(env),
        )
        theirs = self.head(tracking)
        for _ in range(5):
            ours = self.head()
            if ours == theirs:
                return ours
            try:
                self._git("merge-base", "--is-ancestor", ours, theirs)
            except GitError as exc:
                raise GitError(
                    f"local {self.main_branch} {ours[:10]} is not an ancestor of "
                    f"{remote}/{self.main_branch} {theirs[:10]}; refusing to move it"
                ) from exc
            try:
                self._git("update-ref", f"refs/heads/{self.main_branch}", theirs, ours)
            except GitError:
                continue  # moved meanwhile: look again
            self._sync_worktree(ours, theirs)
            return theirs
        raise GitError(f"{self.main_branch} kept moving while fast-forwarding to {remote}")

    def revert_merge(self, merge_sha: str, *, message: str, identity: Identity = TERRY) -> str:
        """A commit on main undoing ``merge_sha`` (relative to its first parent)."""
        old = self.head()
        with tempfile.TemporaryDirectory(prefix="terry-index-") as scratch:
            env = {**identity.env(), "GIT_INDEX_FILE": str(Path(scratch) / "index")}
            self._git("read-tree", old, env=env)
            diff = self._git("diff", "--binary", f"{merge_sha}^1", merge_sha)
            if diff:
                self._git("apply", "--cached", "-R", "-", env=env, istream=_stdin(diff + "\n"))
            tree = self._git("write-tree", env=env)
        commit = self._git(
            "commit-tree", tree, "-p", old, "-F", "-", env=identity.env(), istream=_stdin(message)
        )
        self._git("update-ref", f"refs/heads/{self.main_branch}", commit, old)
        self._sync_worktree(old, commit)
        return commit

    def _sync_worktree(self, old: str, new: str) -> None:
        """Fast-forward the operator's checkout of main when it is clean; else leave it."""
        try:
            current = self._git("symbolic-ref", "--quiet", "HEAD")
        except GitError:
            return
        if current != f"refs/heads/{self.main_branch}":
            return
        try:
            # clean: the index is ``old`` (main before the move; HEAD already names ``new``)
            # and the tracked files are the index
            self._git("diff-index", "--quiet", "--cached", old, "--")
            self._git("diff-files", "--quiet")
            self._git("read-tree", "-m", "-u", old, new)
        except GitError:
            return


def _remote_env(extra: dict[str, str] | None) -> dict[str, str]:
    """Never prompt for credentials; credentials come in ``extra`` (environment variables,
    so they never appear in process arguments)."""
    return {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", **(extra or {})}


def _stdin(text: str) -> io.BufferedReader:
    """GitPython wants a file object with a fileno for ``istream``."""
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - git reads it after we return
    handle.write(text.encode("utf-8"))
    handle.seek(0)
    return handle  # type: ignore[return-value]
