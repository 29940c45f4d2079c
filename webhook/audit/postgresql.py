"""The shared audit: PostgreSQL through psycopg 3 and its connection pool.

Every replica writes the same tables, so the audit API, the console and replay-by-id see one
audit whichever pod answers. The gate's count-and-claim runs in one transaction holding a
transaction-scoped advisory lock (`pg_advisory_xact_lock`), so concurrent decisions on any
number of replicas are counted one after the other: no staleness window, no overshoot.
The pool is created on first use in each process (never in the gunicorn master, never shared
across a fork); the DSN comes from a file or the environment, never from the configuration.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from webhook.audit.errors import AuditUnavailable
from webhook.audit.rows import Dialect
from webhook.audit.store import AuditStore

# One lock for the gate and for migrations, shared by every replica on the database.
GATE_LOCK_KEY = 0x726F6C6C  # "roll"
CONNECT_TIMEOUT_SECONDS = 5
# A held lock or a stuck server answers in seconds (503, retried), not after gunicorn's timeout.
STATEMENT_TIMEOUT_MS = 10_000


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


def redact(dsn: str) -> str:
    """The DSN without its password (URL or key=value form), for messages and logs."""
    dsn = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)


class _Conn:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = self.conn.execute(_pg(sql), tuple(params) if params else None)
        return max(int(cursor.rowcount), 0)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(_pg(sql), tuple(params) if params else None)
        return [dict(row) for row in cursor.fetchall()]


class PostgresStore(AuditStore):
    dialect = Dialect.POSTGRESQL

    def __init__(self, dsn: str, *, max_connections: int = 10) -> None:
        super().__init__()
        self.dsn = dsn
        self.max_connections = max_connections
        self._pool: Any = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()

    def describe(self) -> str:
        return f"audit database {redact(self.dsn)}"

    def _connections(self) -> Any:
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                from psycopg.rows import dict_row
                from psycopg_pool import ConnectionPool

                self._pool = ConnectionPool(
                    self.dsn,
                    min_size=1,
                    max_size=self.max_connections,
                    open=False,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    name=f"audit-{os.getpid()}",
                    kwargs={
                        "row_factory": dict_row,
                        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                        "application_name": "rollback-webhook",
                        "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                    },
                )
                self._pool.open(wait=False)
                self._pool_pid = os.getpid()
            return self._pool

    @contextmanager
    def _use(self) -> Iterator[Any]:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self._connections().connection() as conn:
                yield conn
        except (psycopg.Error, PoolTimeout) as exc:
            raise AuditUnavailable(f"{self.describe()}: {str(exc).strip()}") from exc

    @contextmanager
    def _transaction(self, *, gate: bool = False) -> Iterator[_Conn]:
        with self._use() as conn:  # committed at the end of the block, rolled back on error
            if gate:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (GATE_LOCK_KEY,))
            yield _Conn(conn)

    @contextmanager
    def _reader(self) -> Iterator[_Conn]:
        with self._use() as conn:
            yield _Conn(conn)

    def _tables(self, tx: Any) -> set[str]:
        rows = tx.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {str(r["table_name"]) for r in rows}

    def _columns_of(self, tx: Any, table: str) -> set[str]:
        rows = tx.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
        return {str(r["column_name"]) for r in rows}

    def check_ready(self) -> None:
        """Connect, refuse a read-only server (a standby, or default_transaction_read_only),
        and commit a write of the probe row."""
        self._ensure()
        with self._use() as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery() AS standby, "
                "current_setting('transaction_read_only') AS ro"
            ).fetchone()
            if row["standby"] or row["ro"] == "on":
                raise AuditUnavailable(f"{self.describe()}: the server is read-only")
        super().check_ready()

    check_writable = check_ready

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.close()
            self._pool = None
