"""The durable record: every payload received (raw, before deciding) and every decision.

SQLite in WAL mode (readers never block the writer; several threads and processes may share the
file). One connection per thread. Retention prunes rows older than `retention_days`.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from webhook.decision import Decision, new_id

SCHEMA = """
CREATE TABLE IF NOT EXISTS payloads (
    id TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    source TEXT NOT NULL,
    remote TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL DEFAULT '',
    group_key TEXT NOT NULL DEFAULT '',
    truncated_alerts INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    id TEXT PRIMARY KEY,
    payload_id TEXT,
    time TEXT NOT NULL,
    source TEXT NOT NULL,
    actor TEXT NOT NULL DEFAULT '',
    group_key TEXT NOT NULL DEFAULT '',
    fingerprint TEXT NOT NULL DEFAULT '',
    alertname TEXT NOT NULL DEFAULT '',
    trigger TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    starts_at TEXT,
    namespace TEXT NOT NULL DEFAULT '',
    deployment TEXT NOT NULL DEFAULT '',
    from_revision INTEGER,
    to_revision INTEGER,
    from_replicaset TEXT NOT NULL DEFAULT '',
    to_replicaset TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL,
    reason TEXT,
    detail TEXT NOT NULL DEFAULT '',
    dry_run INTEGER NOT NULL DEFAULT 0,
    overrides TEXT NOT NULL DEFAULT '{}',
    replay_of TEXT,
    duration_ms REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS decisions_time ON decisions (time);
CREATE INDEX IF NOT EXISTS decisions_target ON decisions (namespace, deployment, time);
CREATE INDEX IF NOT EXISTS decisions_outcome ON decisions (outcome, time);
CREATE INDEX IF NOT EXISTS decisions_replay ON decisions (replay_of);
CREATE INDEX IF NOT EXISTS payloads_time ON payloads (received_at);
"""

_COLUMNS = (
    "id payload_id time source actor group_key fingerprint alertname trigger labels starts_at "
    "namespace deployment from_revision to_revision from_replicaset to_replicaset outcome reason "
    "detail dry_run overrides replay_of duration_ms"
).split()


# Older SQLite allows 999 bound values per statement (32766 since 3.32): 24 columns a row.
_ROWS_PER_INSERT = 999 // len(_COLUMNS)


@functools.lru_cache(maxsize=64)
def _insert_sql(rows: int) -> str:
    row = "(" + ", ".join("?" for _ in _COLUMNS) + ")"
    values = ", ".join(row for _ in range(rows))
    return f"INSERT INTO decisions ({', '.join(_COLUMNS)}) VALUES {values}"  # noqa: S608


class AuditUnavailable(Exception):
    """The audit store cannot be written: the receiver answers 503 so Alertmanager retries."""


@dataclass(frozen=True)
class StoredPayload:
    id: str
    received_at: str
    source: str
    remote: str
    actor: str
    group_key: str
    truncated_alerts: int
    body: str


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds")


class AuditStore:
    """SQLite-backed audit. Safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._write_db: sqlite3.Connection | None = None
        self._write_pid = 0
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # A connection of its own, closed at once: gunicorn forks workers after this, and an
        # SQLite connection must not cross a fork.
        setup = self._open()
        try:
            setup.execute("PRAGMA journal_mode=WAL")
            setup.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"audit store {self.path}: {exc}") from exc
        finally:
            setup.close()

    def _open(self, *, shared: bool = False) -> sqlite3.Connection:
        """A connection in autocommit mode; `shared` lets other threads use it (the writer)."""
        try:
            db = sqlite3.connect(
                self.path, timeout=10, isolation_level=None, check_same_thread=not shared
            )
            db.execute("PRAGMA busy_timeout=10000")
            db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"audit store {self.path}: {exc}") from exc
        return db

    @contextmanager
    def _writer(self) -> Iterator[sqlite3.Connection]:
        """The process's one write connection, one writer at a time.

        Threads queue on a Python lock instead of on SQLite's busy handler, which sleeps in
        milliseconds when another connection holds the write lock. Re-created after a fork.
        """
        with self._write_lock:
            if self._write_db is None or self._write_pid != os.getpid():
                self._write_db, self._write_pid = self._open(shared=True), os.getpid()
            try:
                yield self._write_db
            except sqlite3.Error as exc:
                raise AuditUnavailable(f"audit store {self.path}: {exc}") from exc

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._open()
            db.row_factory = sqlite3.Row
            self._local.db = db
        try:
            yield db
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"audit store {self.path}: {exc}") from exc

    # -- writes ----------------------------------------------------------------------------
    def store_payload(
        self,
        body: str,
        *,
        received_at: datetime,
        source: str,
        remote: str = "",
        actor: str = "",
        group_key: str = "",
        truncated_alerts: int = 0,
    ) -> str:
        """Store a raw payload durably and return its id (before anything is decided)."""
        payload_id = "p" + new_id(received_at)[1:]
        with self._writer() as db:
            db.execute(
                "INSERT INTO payloads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    payload_id,
                    _iso(received_at),
                    source,
                    remote,
                    actor,
                    group_key,
                    truncated_alerts,
                    body,
                ),
            )
        return payload_id

    def record(self, decision: Decision) -> None:
        """Store one decision."""
        self.record_many([decision])

    def record_many(self, decisions: list[Decision]) -> None:
        """Store decisions in one transaction (one commit, however many)."""
        if not decisions:
            return
        rows = []
        for decision in decisions:
            row = {column: getattr(decision, column) for column in _COLUMNS}
            row["time"] = _iso(decision.time)
            row["starts_at"] = _iso(decision.starts_at) if decision.starts_at else None
            row["labels"] = json.dumps(decision.labels, sort_keys=True)
            row["overrides"] = json.dumps(decision.overrides, sort_keys=True)
            row["dry_run"] = int(decision.dry_run)
            rows.append([row[c] for c in _COLUMNS])
        # One multi-row INSERT is one statement and one commit in autocommit mode; only a
        # payload with more alerts than a statement may carry needs an explicit transaction.
        chunks = [rows[i : i + _ROWS_PER_INSERT] for i in range(0, len(rows), _ROWS_PER_INSERT)]
        with self._writer() as db:
            if len(chunks) == 1:
                db.execute(_insert_sql(len(rows)), [v for row in rows for v in row])
                return
            db.execute("BEGIN")
            try:
                for chunk in chunks:
                    db.execute(_insert_sql(len(chunk)), [v for row in chunk for v in row])
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def prune(self, *, retention_days: int, now: datetime) -> int:
        """Delete decisions and payloads older than the retention; returns rows deleted."""
        cutoff = _iso(now - timedelta(days=retention_days))
        with self._writer() as db:
            gone = db.execute("DELETE FROM decisions WHERE time < ?", (cutoff,)).rowcount
            gone += db.execute("DELETE FROM payloads WHERE received_at < ?", (cutoff,)).rowcount
        return int(gone)

    def check_writable(self) -> None:
        """Readiness: take and release the write lock (raises AuditUnavailable)."""
        with self._writer() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")

    # -- reads used by the decision ---------------------------------------------------------
    def count_outcomes_since(self, outcomes: Iterable[str], since: datetime) -> int:
        """Decisions with any of `outcomes` at or after `since` (one query)."""
        wanted = list(outcomes)
        marks = ", ".join("?" for _ in wanted)
        with self._connection() as db:
            row = db.execute(
                f"SELECT COUNT(*) FROM decisions WHERE outcome IN ({marks}) AND time >= ?",  # noqa: S608
                (*wanted, _iso(since)),
            ).fetchone()
        return int(row[0])

    def find_previous(
        self,
        *,
        namespace: str,
        deployment: str,
        from_replicaset: str,
        outcomes: Iterable[str],
        source: str,
        since: datetime,
    ) -> str | None:
        """Id of an earlier decision with one of `outcomes` for the same bad revision."""
        wanted = list(outcomes)
        marks = ", ".join("?" for _ in wanted)
        with self._connection() as db:
            row = db.execute(
                f"SELECT id FROM decisions WHERE namespace = ? AND deployment = ? "  # noqa: S608
                f"AND from_replicaset = ? AND outcome IN ({marks}) AND source = ? AND time >= ? "
                "ORDER BY time DESC LIMIT 1",
                (namespace, deployment, from_replicaset, *wanted, source, _iso(since)),
            ).fetchone()
        return str(row[0]) if row else None

    # -- queries (audit API, CLI) -----------------------------------------------------------
    def query(
        self,
        *,
        namespace: str | None = None,
        deployment: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        before_id: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Decisions newest first, filtered; `before_id` pages past an earlier page's last id."""
        clauses, params = [], []
        for column, value in (
            ("namespace", namespace),
            ("deployment", deployment),
            ("outcome", outcome),
        ):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since:
            clauses.append("time >= ?")
            params.append(_iso(since))
        if before_id:
            clauses.append("(time, id) < (SELECT time, id FROM decisions WHERE id = ?)")
            params.append(before_id)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._connection() as db:
            rows = db.execute(
                f"SELECT * FROM decisions {where} ORDER BY time DESC, id DESC LIMIT ?",  # noqa: S608
                (*params, limit),
            ).fetchall()
        return [self._row(r) for r in rows]

    def get(self, decision_id: str) -> dict[str, Any] | None:
        with self._connection() as db:
            row = db.execute("SELECT * FROM decisions WHERE id = ?", (decision_id,)).fetchone()
        return self._row(row) if row else None

    def replays_of(self, decision_id: str) -> list[dict[str, Any]]:
        with self._connection() as db:
            rows = db.execute(
                "SELECT * FROM decisions WHERE replay_of = ? ORDER BY time", (decision_id,)
            ).fetchall()
        return [self._row(r) for r in rows]

    def payload(self, payload_id: str) -> StoredPayload | None:
        with self._connection() as db:
            row = db.execute("SELECT * FROM payloads WHERE id = ?", (payload_id,)).fetchone()
        return StoredPayload(**dict(row)) if row else None

    def payloads(self, *, limit: int = 100) -> list[StoredPayload]:
        with self._connection() as db:
            rows = db.execute(
                "SELECT * FROM payloads ORDER BY received_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [StoredPayload(**dict(r)) for r in rows]

    @staticmethod
    def _row(row: sqlite3.Row) -> dict[str, Any]:
        data = dict(row)
        data["labels"] = json.loads(data["labels"])
        data["overrides"] = json.loads(data["overrides"])
        data["dry_run"] = bool(data["dry_run"])
        return data
