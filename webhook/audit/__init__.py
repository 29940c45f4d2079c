"""The durable record: every payload (raw, before its answer), every decision, the write-ahead
intent of every decision that will act, and the console's sessions and login attempts, in
SQLite or PostgreSQL.

The interface (`AuditStore`, store.py) is what the rest of the product uses:
- payloads and decisions: `store_payload`, `record_many` (also closes the decisions'
  intents), `query`, `get`, `replays_of`, `payload`, `payloads`, `prune`;
- the gate (the circuit breaker and dry-run duplicates, exact across replicas sharing the
  store): `begin_intent(intent, rule) -> GateAnswer`, which counts, checks and records the
  intent in one transaction; `cancel_intent` after a definite non-write (409);
- settling: `open_intents()`, `settle(...)` (webhook/reconcile.py);
- the console (console.py, shared by every replica on the store): sessions `open_session`,
  `session_active`, `end_session`, `keep_only_keys`, `sessions`; login attempts
  `record_login`, `login_failures_since` (the rate limit), `login_attempts`;
- health: `check_ready()` for /readyz, `check_integrity()`; `prepare()` creates or upgrades
  the schema (schema.py) and is run on first use in each process.
"""

from __future__ import annotations

import os
from pathlib import Path

from webhook.audit.errors import AuditUnavailable, SchemaTooNew
from webhook.audit.intents import GateAnswer, GateRule, SettledBy
from webhook.audit.rows import DecisionRow, IntentKind, IntentRow, IntentState
from webhook.audit.sqlite import SqliteStore
from webhook.audit.store import AuditStore, StoredPayload

DSN_ENV = "ROLLBACK_WEBHOOK_AUDIT_DSN"

__all__ = [
    "DSN_ENV",
    "AuditStore",
    "AuditUnavailable",
    "DecisionRow",
    "GateAnswer",
    "GateRule",
    "IntentKind",
    "IntentRow",
    "IntentState",
    "SchemaTooNew",
    "SettledBy",
    "SqliteStore",
    "StoredPayload",
    "open_store",
    "read_dsn",
]


def read_dsn(dsn_file: str | None) -> str:
    """The PostgreSQL DSN: the file's content, else $ROLLBACK_WEBHOOK_AUDIT_DSN (never the
    configuration text, which is logged at start-up). ValueError names what is missing."""
    if dsn_file:
        try:
            text = Path(dsn_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"audit.dsn_file: cannot read {dsn_file} ({exc.strerror})") from exc
        if not text:
            raise ValueError(f"audit.dsn_file: {dsn_file} is empty")
        return text
    text = os.environ.get(DSN_ENV, "").strip()
    if not text:
        raise ValueError(
            f"audit.backend postgresql needs audit.dsn_file or ${DSN_ENV} (the DSN is a secret: "
            "never put it in the configuration file)"
        )
    return text


def open_store(
    *,
    backend: str = "sqlite",
    path: str = "",
    dsn_file: str | None = None,
    max_connections: int = 10,
) -> AuditStore:
    """The configured store, not yet connected (ValueError for a bad backend or DSN)."""
    if backend == "sqlite":
        return SqliteStore(path)
    if backend == "postgresql":
        from webhook.audit.postgresql import PostgresStore

        return PostgresStore(read_dsn(dsn_file), max_connections=max_connections)
    raise ValueError(f"audit.backend: expected sqlite or postgresql, got {backend!r}")
