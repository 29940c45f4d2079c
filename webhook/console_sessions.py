"""Server-side state of the console: its sessions and the log of login attempts.

A signed cookie alone cannot be taken back: logging out only asked the browser to forget it, so
a copied cookie kept working for its whole 12 h. Here every session is a row; the cookie names
it (by a random id, stored only as its SHA-256), logout and token rotation delete rows, and a
cookie whose row is gone is refused by every worker that shares the file.

The login attempt log is both the audit of refusals (who, from where, when, why) and what the
login rate limit counts (webhook/login_guard.py), so every worker counts the same attempts.

Storage: an SQLite file beside the SQLite audit (`<audit.path>.console`), so a session is valid
on the workers of one replica; with several replicas the console needs session affinity (or a
shared store behind this same interface). Without a file (the PostgreSQL audit), one in-memory
database per process: sessions then fail closed (a worker that did not issue a session refuses
it), never open.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from webhook.config import Settings

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS console_sessions (
        id_hash TEXT PRIMARY KEY, name TEXT NOT NULL, key_id TEXT NOT NULL,
        created REAL NOT NULL, expires REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS console_logins (
        time REAL NOT NULL, client TEXT NOT NULL, name TEXT NOT NULL,
        outcome TEXT NOT NULL, detail TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS console_logins_time ON console_logins (time)",
)
# Attempts older than this are dropped as new ones are written (the rate limit looks back less).
KEEP_ATTEMPTS_SECONDS = 7 * 24 * 3600


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def console_store_path(settings: Settings) -> str | None:
    """Where the console's state lives: beside a SQLite audit, else nowhere (in memory)."""
    audit = settings.audit
    if getattr(audit, "backend", "sqlite") != "sqlite" or not audit.path:
        return None
    if audit.path == ":memory:":
        return None
    return f"{audit.path}.console"


class ConsoleStore:
    """Sessions and login attempts in SQLite (a file shared by workers, or one process's memory)."""

    def __init__(self, path: str | None, *, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._memory: sqlite3.Connection | None = None
        if path is None:
            self._memory = sqlite3.connect(":memory:", check_same_thread=False)
        with self._tx() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._memory or sqlite3.connect(self._path or ":memory:", timeout=10)
            try:
                with db:  # one transaction: commit, or roll back on error
                    yield db
            finally:
                if self._memory is None:
                    db.close()

    # -- sessions --------------------------------------------------------------------------
    def open_session(self, session_id: str, *, name: str, key_id: str, expires: float) -> None:
        now = self._clock()
        with self._tx() as db:
            db.execute("DELETE FROM console_sessions WHERE expires < ?", (now,))
            db.execute(
                "INSERT INTO console_sessions VALUES (?, ?, ?, ?, ?)",
                (_hash(session_id), name, key_id, now, expires),
            )

    def session_active(self, session_id: str, *, name: str, key_id: str) -> bool:
        """True while the session exists, belongs to `name` with this token, and is unexpired."""
        with self._tx() as db:
            row = db.execute(
                "SELECT name, key_id, expires FROM console_sessions WHERE id_hash = ?",
                (_hash(session_id),),
            ).fetchone()
        if row is None:
            return False
        return bool(row[0] == name and row[1] == key_id and row[2] >= self._clock())

    def end_session(self, session_id: str) -> bool:
        with self._tx() as db:
            cursor = db.execute(
                "DELETE FROM console_sessions WHERE id_hash = ?", (_hash(session_id),)
            )
        return cursor.rowcount > 0

    def keep_only_keys(self, key_ids: set[str]) -> int:
        """End every session issued for a token that is no longer configured (rotation)."""
        with self._tx() as db:
            rows = db.execute("SELECT id_hash, key_id FROM console_sessions").fetchall()
            stale = [(h,) for h, key in rows if key not in key_ids]
            db.executemany("DELETE FROM console_sessions WHERE id_hash = ?", stale)
        return len(stale)

    def sessions(self) -> list[dict[str, Any]]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT name, key_id, created, expires FROM console_sessions ORDER BY created"
            ).fetchall()
        return [dict(zip(("name", "key_id", "created", "expires"), r, strict=True)) for r in rows]

    # -- login attempts ----------------------------------------------------------------------
    def record_attempt(self, *, client: str, name: str, outcome: str, detail: str = "") -> None:
        now = self._clock()
        with self._tx() as db:
            db.execute(
                "DELETE FROM console_logins WHERE time < ?", (now - KEEP_ATTEMPTS_SECONDS,)
            )
            db.execute(
                "INSERT INTO console_logins VALUES (?, ?, ?, ?, ?)",
                (now, client, name, outcome, detail[:500]),
            )

    def failures_since(
        self, since: float, *, client: str | None = None, name: str | None = None
    ) -> int:
        """Failed or refused attempts since `since`, of one client and/or one stated name."""
        sql = "SELECT COUNT(*) FROM console_logins WHERE time >= ? AND outcome != 'ok'"
        params: list[Any] = [since]
        if client is not None:
            sql += " AND client = ?"
            params.append(client)
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        with self._tx() as db:
            count: int = db.execute(sql, params).fetchone()[0]
        return count

    def attempts(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The newest login attempts first: time, client, name, outcome, detail."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT time, client, name, outcome, detail FROM console_logins "
                "ORDER BY time DESC, rowid DESC LIMIT ?",
                (limit,),
            ).fetchall()
        keys = ("time", "client", "name", "outcome", "detail")
        return [dict(zip(keys, r, strict=True)) for r in rows]
