"""The audit schema's version and its ordered migrations.

A fresh store gets the tables the row classes define (rows.py) and the current version. An
existing store is upgraded step by step from the version it records (a store without a
`schema_version` table but with `decisions` is version 1: the single-replica SQLite audit
written before versions existed). A store newer than this code is refused, never written to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from webhook.audit.errors import SchemaTooNew
from webhook.audit.rows import (
    ConsoleSessionRow,
    DecisionRow,
    Dialect,
    IntentRow,
    Kind,
    LoginAttemptRow,
    PayloadRow,
    column,
    columns,
    create_table,
)


@dataclass(frozen=True, kw_only=True)
class SchemaVersionRow:
    """One applied migration (the store's version is the highest)."""

    TABLE = "schema_version"

    version: int = column(Kind.INTEGER, primary=True)
    applied_at: str = column(Kind.TIME)
    description: str = column(Kind.TEXT, default="")


@dataclass(frozen=True, kw_only=True)
class ProbeRow:
    """The row /readyz rewrites to prove the store takes writes (one row, id 1)."""

    TABLE = "probe"

    id: int = column(Kind.INTEGER, primary=True)
    written_at: str = column(Kind.TIME)
    writer: str = column(Kind.TEXT, default="")


TABLES = (
    PayloadRow,
    DecisionRow,
    IntentRow,
    ProbeRow,
    SchemaVersionRow,
    ConsoleSessionRow,
    LoginAttemptRow,
)

INDEXES = (
    "CREATE INDEX IF NOT EXISTS decisions_time ON decisions (time)",
    "CREATE INDEX IF NOT EXISTS decisions_target ON decisions (namespace, deployment, time)",
    "CREATE INDEX IF NOT EXISTS decisions_outcome ON decisions (outcome, time)",
    "CREATE INDEX IF NOT EXISTS decisions_replay ON decisions (replay_of)",
    "CREATE INDEX IF NOT EXISTS payloads_time ON payloads (received_at)",
    "CREATE INDEX IF NOT EXISTS intents_state ON intents (state, time)",
    "CREATE INDEX IF NOT EXISTS intents_target ON intents (namespace, deployment, state)",
)
# Schema 3: the console's sessions and login attempts (the rate limit counts by client, by name).
CONSOLE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS console_sessions_expires ON console_sessions (expires)",
    "CREATE INDEX IF NOT EXISTS console_logins_time ON console_logins (time)",
    "CREATE INDEX IF NOT EXISTS console_logins_client ON console_logins (client, time)",
    "CREATE INDEX IF NOT EXISTS console_logins_name ON console_logins (name, time)",
)


# Reads the store's columns of a table (a backend's catalog query).
ColumnsOf = Callable[[str], set[str]]


def add_missing_columns(row: type, dialect: Dialect, existing: set[str]) -> list[str]:
    """ALTER TABLE statements for the columns of `row` the table lacks."""
    table: str = row.TABLE  # type: ignore[attr-defined]
    return [
        f"ALTER TABLE {table} ADD COLUMN {spec.ddl(dialect)}"
        for spec in columns(row)
        if spec.name not in existing and not spec.primary
    ]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: Callable[[Dialect, ColumnsOf], list[str]]


def _v2(dialect: Dialect, columns_of: ColumnsOf) -> list[str]:
    return [
        *add_missing_columns(DecisionRow, dialect, columns_of("decisions")),
        create_table(IntentRow, dialect),
        create_table(ProbeRow, dialect),
        *INDEXES,
    ]


def _v3(dialect: Dialect, columns_of: ColumnsOf) -> list[str]:
    return [
        create_table(ConsoleSessionRow, dialect),
        create_table(LoginAttemptRow, dialect),
        *CONSOLE_INDEXES,
    ]


def _v4(dialect: Dialect, columns_of: ColumnsOf) -> list[str]:
    # No table changes: intents of kind `resume`, which a release before them would settle as
    # rollbacks (recording a resume that landed as a failed rollback), so those refuse it.
    return []


MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "write-ahead intents, decisions.settled_by, readiness probe row", _v2),
    Migration(3, "console sessions and login attempts, shared by every replica", _v3),
    Migration(4, "resume intents (kind resume), unknown to the reconciler of version 3", _v4),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


def fresh_statements(dialect: Dialect) -> list[str]:
    """Every table and index of the current version, for an empty store."""
    return [*(create_table(row, dialect) for row in TABLES), *INDEXES, *CONSOLE_INDEXES]


def pending(version: int) -> list[Migration]:
    """The migrations a store at `version` needs, in order (SchemaTooNew past ours)."""
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"the audit store has schema version {version}, newer than this rollback-webhook "
            f"understands ({SCHEMA_VERSION}): run a release that knows it, or point "
            "audit.path / audit.dsn_file at another store (nothing was written)"
        )
    return [m for m in MIGRATIONS if m.version > version]
