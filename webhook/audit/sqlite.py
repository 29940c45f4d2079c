"""The embedded audit: one SQLite file in WAL mode (readers never block the writer).

Several threads and processes may share the file: every write transaction starts with
BEGIN IMMEDIATE, so the gate's count-and-claim is exact for every process on the same file
(gunicorn workers of one pod). Pods with a file each are separate audits: see docs/audit.md.
One write connection per process (threads queue on a Python lock rather than on SQLite's
busy handler), one read connection per thread; all re-created after a fork.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from webhook.audit.errors import AuditUnavailable
from webhook.audit.rows import Dialect
from webhook.audit.store import INTEGRITY_MAX_AGE_SECONDS, AuditStore

# Below this much free space on the audit's filesystem, /readyz says not ready: a WAL
# checkpoint may rewrite frames in place, so a full disk does not always fail a small write.
MIN_FREE_BYTES = 1024 * 1024
BUSY_TIMEOUT_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 2.0
LOCK_POLL_SECONDS = 0.05


class _Conn:
    """A sqlite3 connection as a Tx: execute returns the row count, query returns dicts."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self.db.execute(sql, params).rowcount)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.db.execute(sql, params).fetchall()]


class SqliteStore(AuditStore):
    dialect = Dialect.SQLITE

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = str(path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._write_db: sqlite3.Connection | None = None
        self._write_pid = 0

    def describe(self) -> str:
        return f"audit store {self.path}"

    def _open(
        self,
        *,
        shared: bool = False,
        timeout: float = BUSY_TIMEOUT_SECONDS,
        deadline: float | None = None,
    ) -> sqlite3.Connection:
        if deadline is None:
            deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=not shared
            )
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        except (sqlite3.Error, OSError) as exc:
            raise AuditUnavailable(f"{self.describe()}: {exc}") from exc
        # Turning a file that is not in WAL mode yet (a new one, or one written before WAL)
        # to WAL needs it to itself: another process opening or upgrading it at the same time
        # holds it for longer than a write connection's short busy timeout.
        try:
            self._when_unlocked(db, "PRAGMA journal_mode=WAL", deadline)
            self._when_unlocked(db, "PRAGMA synchronous=NORMAL", deadline)
        except AuditUnavailable:  # every sqlite3.Error, as _when_unlocked raises them
            db.close()
            raise
        return db

    @contextmanager
    def _transaction(self, *, gate: bool = False) -> Iterator[_Conn]:
        # One deadline for the whole wait, this process's other writers included: writers
        # queued behind one that polls a locked file each fail by BUSY_TIMEOUT_SECONDS from
        # their own start, not one after another (a payload's Deployments decided side by
        # side would otherwise wait that long each before their 503).
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        if not self._write_lock.acquire(timeout=BUSY_TIMEOUT_SECONDS):
            raise AuditUnavailable(
                f"{self.describe()}: database is locked (this process's writes queued "
                f"{BUSY_TIMEOUT_SECONDS:.0f}s)"
            )
        try:
            if self._write_db is None or self._write_pid != os.getpid():
                db = self._open(shared=True, timeout=LOCK_POLL_SECONDS, deadline=deadline)
                self._write_db, self._write_pid = db, os.getpid()
            db = self._write_db
            self._when_unlocked(db, "BEGIN IMMEDIATE", deadline)
            try:
                yield _Conn(db)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(db)
                raise AuditUnavailable(f"{self.describe()}: {exc}") from exc
            except BaseException:
                _rollback(db)
                raise
        finally:
            self._write_lock.release()

    def _when_unlocked(self, db: sqlite3.Connection, sql: str, deadline: float) -> None:
        """Run `sql` (BEGIN IMMEDIATE, the switch to WAL), waiting until `deadline`
        (time.monotonic()) for another process's lock in short polls with time.sleep, which
        yields under gevent (SQLite's own busy handler would block every greenlet of the
        worker, /healthz included)."""
        while True:
            try:
                db.execute(sql)
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() >= deadline:
                    raise AuditUnavailable(f"{self.describe()}: {exc}") from exc
            except sqlite3.Error as exc:
                raise AuditUnavailable(f"{self.describe()}: {exc}") from exc
            time.sleep(LOCK_POLL_SECONDS)

    @contextmanager
    def _reader(self) -> Iterator[_Conn]:
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", 0) != os.getpid():
            db = self._open()
            self._local.db, self._local.pid = db, os.getpid()
        try:
            yield _Conn(db)
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"{self.describe()}: {exc}") from exc

    def _tables(self, tx: Any) -> set[str]:
        rows = tx.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(r["name"]) for r in rows}

    def _columns_of(self, tx: Any, table: str) -> set[str]:
        return {str(r["name"]) for r in tx.query(f"PRAGMA table_info({table})")}

    def check_integrity(self) -> str | None:
        """SQLite's quick_check (every page and index entry is readable and consistent)."""
        try:
            db = self._open()
            try:
                rows = [str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall()]
            finally:
                db.close()
        except (sqlite3.Error, AuditUnavailable) as exc:
            return str(exc)
        return None if rows == ["ok"] else "; ".join(rows[:5])

    def check_ready(self) -> None:
        """Connect, refuse a full or corrupt store, and commit a write of the probe row (with a
        short busy timeout, so a held write lock answers in seconds)."""
        self._ensure()
        if time.monotonic() - self._integrity_at > INTEGRITY_MAX_AGE_SECONDS:
            self.refresh_integrity()
        if self._broken:
            raise AuditUnavailable(f"{self.describe()}: failed its integrity check: {self._broken}")
        if self.path != ":memory:":
            stat = os.statvfs(Path(self.path).parent)
            free = stat.f_bavail * stat.f_frsize
            if free < MIN_FREE_BYTES:
                raise AuditUnavailable(
                    f"{self.describe()}: its filesystem is full ({free} bytes free, "
                    f"below {MIN_FREE_BYTES})"
                )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        db = self._open(timeout=LOCK_POLL_SECONDS, deadline=deadline)
        try:
            self._when_unlocked(db, "BEGIN IMMEDIATE", deadline)
            db.execute(
                "INSERT INTO probe (id, written_at, writer) VALUES (1, datetime('now'), ?) "
                "ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at, "
                "writer = excluded.writer",
                (str(os.getpid()),),
            )
            db.execute("COMMIT")
        except (sqlite3.Error, AuditUnavailable) as exc:
            _rollback(db)
            raise AuditUnavailable(f"{self.describe()}: not writable: {exc}") from exc
        finally:
            db.close()

    check_writable = check_ready

    def close(self) -> None:
        with self._write_lock:
            if self._write_db is not None and self._write_pid == os.getpid():
                self._write_db.close()
            self._write_db = None
        db = getattr(self._local, "db", None)
        if db is not None and getattr(self._local, "pid", 0) == os.getpid():
            db.close()
        self._local = threading.local()


def _rollback(db: sqlite3.Connection) -> None:
    try:
        if db.in_transaction:
            db.execute("ROLLBACK")
    except sqlite3.Error:
        pass
