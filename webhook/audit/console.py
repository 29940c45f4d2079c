"""The console's server-side state in the audit store: sessions and login attempts.

Part of the AuditStore interface (a mixin of store.py's AuditStore, the SQL written once for
both backends), so with PostgreSQL every replica shares them: a session opened through one
replica is valid on all, logout or token rotation on one ends it on all, and the login rate
limit counts the failures seen by all (webhook/login_guard.py). The attempts are the audit's
record of console logins and their refusals (`login_attempts`, GET /api/v1/audit/logins).

A session id reaches the store only as its SHA-256. Times are stored as the other audit
times are (UTC ISO 8601 text, which sorts as time does).
"""

from __future__ import annotations

import hashlib
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from webhook.audit.rows import (
    ConsoleSessionRow,
    LoginAttemptRow,
    LoginOutcome,
    column_names,
    from_record,
    iso,
    newest_first,
    to_params,
)

if TYPE_CHECKING:
    from webhook.audit.store import Tx

DETAIL_CHARS = 500
_SESSION_COLUMNS = column_names(ConsoleSessionRow)
_LOGIN_COLUMNS = column_names(LoginAttemptRow)


def session_hash(session_id: str) -> str:
    """What the store keeps of a session id (the cookie's secret part)."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def _insert(table: str, names: tuple[str, ...]) -> str:
    marks = ", ".join("?" for _ in names)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608


class ConsoleRecords(ABC):
    """Sessions and login attempts; the backend's transactions come from AuditStore."""

    @abstractmethod
    def _transaction(self, *, gate: bool = False) -> AbstractContextManager[Tx]: ...

    @abstractmethod
    def _reader(self) -> AbstractContextManager[Tx]: ...

    @abstractmethod
    def _ensure(self) -> None: ...

    @abstractmethod
    def _writable(self) -> None: ...

    # -- sessions ------------------------------------------------------------------------------
    def open_session(
        self, session_id: str, *, name: str, key_id: str, created: datetime, expires: datetime
    ) -> None:
        """Record a new session (and forget the ones expired by `created`)."""
        self._writable()
        row = ConsoleSessionRow(
            id_hash=session_hash(session_id),
            name=name,
            key_id=key_id,
            created=iso(created),
            expires=iso(expires),
        )
        with self._transaction() as tx:
            tx.execute("DELETE FROM console_sessions WHERE expires < ?", (iso(created),))
            tx.execute(_insert(ConsoleSessionRow.TABLE, _SESSION_COLUMNS), to_params(row))

    def session_active(self, session_id: str, *, name: str, key_id: str, now: datetime) -> bool:
        """True while the session exists, belongs to `name` under this token, and is unexpired."""
        self._ensure()
        with self._reader() as db:
            rows = db.query(
                "SELECT name, key_id FROM console_sessions WHERE id_hash = ? AND expires >= ?",
                (session_hash(session_id), iso(now)),
            )
        return bool(rows) and rows[0]["name"] == name and rows[0]["key_id"] == key_id

    def end_session(self, session_id: str) -> bool:
        """Delete the session (logout); False when it was not there."""
        self._writable()
        with self._transaction() as tx:
            gone = tx.execute(
                "DELETE FROM console_sessions WHERE id_hash = ?", (session_hash(session_id),)
            )
        return gone > 0

    def keep_only_keys(self, key_ids: Iterable[str]) -> int:
        """End every session issued under a token that is no longer configured (rotation)."""
        self._writable()
        keep = sorted(set(key_ids))
        where = f"WHERE key_id NOT IN ({', '.join('?' for _ in keep)})" if keep else ""
        with self._transaction() as tx:
            return tx.execute(f"DELETE FROM console_sessions {where}", keep)  # noqa: S608

    def sessions(self) -> list[dict[str, Any]]:
        """The open sessions, oldest first: name, key_id, created, expires (never the id)."""
        self._ensure()
        with self._reader() as db:
            return db.query(
                "SELECT name, key_id, created, expires FROM console_sessions ORDER BY created"
            )

    # -- login attempts ------------------------------------------------------------------------
    def record_login(
        self, *, time: datetime, client: str, name: str, outcome: LoginOutcome, detail: str = ""
    ) -> None:
        """Record one login attempt: succeeded, failed, or refused by the rate limit."""
        self._writable()
        row = LoginAttemptRow(
            id=f"l-{time.strftime('%Y%m%dT%H%M%S%f')}-{secrets.token_hex(4)}",
            time=iso(time),
            client=client,
            name=name,
            outcome=outcome,
            detail=detail[:DETAIL_CHARS],
        )
        with self._transaction() as tx:
            tx.execute(_insert(LoginAttemptRow.TABLE, _LOGIN_COLUMNS), to_params(row))

    def login_failures_since(
        self, since: datetime, *, client: str | None = None, name: str | None = None
    ) -> int:
        """Failed or refused attempts since `since`, of one client and/or one stated name."""
        self._ensure()
        sql = "SELECT COUNT(*) AS n FROM console_logins WHERE time >= ? AND outcome != ?"
        params: list[Any] = [iso(since), LoginOutcome.OK]
        for column, value in (("client", client), ("name", name)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        with self._reader() as db:
            return int(db.query(sql, params)[0]["n"])

    def login_attempts(
        self, *, outcome: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Login attempts newest first: id, time, client, name, outcome, detail."""
        self._ensure()
        select = newest_first("console_logins", [], [], outcome=outcome, since=since, limit=limit)
        with self._reader() as db:
            rows = db.query(*select)
        return [from_record(LoginAttemptRow, r) for r in rows]

    @staticmethod
    def _prune_console(tx: Tx, *, cutoff: str, now: str) -> int:
        """Inside prune(): attempts past the retention, sessions past their expiry."""
        gone = tx.execute("DELETE FROM console_logins WHERE time < ?", (cutoff,))
        return gone + tx.execute("DELETE FROM console_sessions WHERE expires < ?", (now,))
