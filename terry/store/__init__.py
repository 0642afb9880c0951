"""The store: SQLAlchemy engine, sessions and Alembic migrations.

SQLite by default (``.terry/terry.db`` in the GitOps repository); any SQLAlchemy URL through
``TERRY_DATABASE_URL``. Every state change is one transaction with an audit row.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from terry.errors import StoreError

__all__ = ["Store"]

MIGRATIONS = Path(__file__).parent / "migrations"

# A migration file's own lines (as script.py.mako writes them): revision = "0011", ...
_ASSIGNMENT = re.compile(
    r"^(revision|down_revision|branch_labels|depends_on)\s*(?::[^=\n]*)?=\s*(.*?)\s*$", re.M
)
_LITERAL = re.compile(r"""None|"([^"\\]+)"|'([^'\\]+)'""")


def head_revision(versions: Path = MIGRATIONS / "versions") -> str | None:
    """The newest migration's revision id, read from the migration files as text (without
    importing Alembic), or None unless they plainly form one chain: each file assigns
    ``revision`` and ``down_revision`` once, as a quoted id (``None`` for the first), no
    branch labels nor dependencies, every revision reached from one head. None means: let
    Alembic read them."""
    parents: dict[str, str | None] = {}
    for path in versions.iterdir():
        # the files Alembic loads: *.py, except __init__ and editors' lock files
        if path.suffix != ".py" or path.name.startswith(("__init__", ".#")):
            continue
        found: dict[str, list[str | None]] = {}
        for name, value in _ASSIGNMENT.findall(path.read_text(encoding="utf-8")):
            literal = _LITERAL.fullmatch(value)
            if literal is None:
                return None
            found.setdefault(name, []).append(literal.group(1) or literal.group(2))
        revision, down = found.get("revision", []), found.get("down_revision", [])
        if len(revision) != 1 or revision[0] is None or len(down) != 1:
            return None
        if any(v is not None for v in found.get("branch_labels", []) + found.get("depends_on", [])):
            return None
        if revision[0] in parents:
            return None
        parents[revision[0]] = down[0]
    heads = set(parents) - set(parents.values())
    if len(heads) != 1:
        return None
    (head,) = heads
    seen: set[str] = set()
    at: str | None = head
    while at is not None:
        if at in seen or at not in parents:
            return None
        seen.add(at)
        at = parents[at]
    return head if seen == set(parents) else None


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit survives power loss, not only a crash of Terry. The webhook commits in
    # groups, so the fsync is paid once per batch.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Checkpoints inside a commit are rare (the webhook's group commit would pay for copying
    # the log back): a server's folding checkpoints after each batch (``Store.checkpoint``);
    # this only bounds the log (40 MB) when nothing else does.
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.close()


class WriteTurns:
    """SQLite takes one writer at a time, and a writer that finds the database locked sleeps
    in SQLite's busy handler (up to 100 ms a try) while another thread of this process takes
    the lock again. Threads of one process take turns here instead, and an urgent writer
    (the webhook's group commit) goes before any waiting background writer (folding).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._urgent_waiting = 0

    @contextmanager
    def turn(self, *, urgent: bool) -> Iterator[None]:
        with self._cond:
            if urgent:
                self._urgent_waiting += 1
            try:
                while self._held or (not urgent and self._urgent_waiting):
                    self._cond.wait()
            finally:
                if urgent:
                    self._urgent_waiting -= 1
            self._held = True
        try:
            yield
        finally:
            with self._cond:
                self._held = False
                self._cond.notify_all()


class Store:
    """One database. ``session()`` is a unit of work: committed on success, rolled back on error."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if url.startswith("sqlite:"):
                db_path = url.removeprefix("sqlite:///")
                if db_path and db_path != ":memory:":
                    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
                self.engine: Engine = create_engine(url, connect_args={"timeout": 30})
                event.listen(self.engine, "connect", _sqlite_pragmas)
            else:
                self.engine = create_engine(url, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot open the store {self.safe_url}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._turns = WriteTurns() if url.startswith("sqlite:") else None

    def write_turn(self, *, urgent: bool) -> AbstractContextManager[None]:
        """Hold around a write transaction that contends with others of this process (SQLite
        only; PostgreSQL locks rows, so this is a no-op there)."""
        if self._turns is None:
            return nullcontext()
        return self._turns.turn(urgent=urgent)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<unparseable database URL>"

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision. A store already there is seen
        with one query, without importing Alembic (every command opens the store)."""
        if self._at_head():
            return
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise StoreError(f"store {self.safe_url} unavailable: {exc.orig}") from exc

    def _at_head(self) -> bool:
        """Whether the schema is at the newest revision: Alembic's version table holds
        exactly the head of the migration files. Any doubt (no table, no plain head, the
        database unreachable) is False, and Alembic decides."""
        head = head_revision()
        if head is None:
            return False
        try:
            with self.engine.connect() as connection:
                rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        except SQLAlchemyError:
            return False
        return [tuple(row) for row in rows] == [(head,)]

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise StoreError(f"store {self.safe_url} unavailable: {exc.orig}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def checkpoint(self) -> None:
        """Copy SQLite's write-ahead log back into the database without blocking writers
        (folding calls this after each batch; a no-op on PostgreSQL)."""
        if self._turns is None:
            return
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except OperationalError as exc:
            raise StoreError(f"store {self.safe_url} unavailable: {exc.orig}") from exc

    def dispose(self) -> None:
        self.engine.dispose()
