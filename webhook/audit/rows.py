"""The audit's rows, defined once.

Each table is one frozen dataclass; a field's metadata says its column type. The DDL of both
stores, the column lists and the INSERT statements are generated from these classes, so a new
field is written in one place (plus, for existing databases, one migration in schema.py; a test
checks that a migrated database and a fresh one have the same columns).

Times are stored as UTC ISO 8601 text with microseconds (`2026-11-01T10:00:00.000000+00:00`),
which sorts as time does in both stores; JSON columns hold text; booleans are 0/1 integers.
"""

# column() returns dataclasses.field(...) with the column type in its metadata.
# ruff: noqa: RUF009

from __future__ import annotations

import functools
import json
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from webhook.decision import Decision


class Kind(StrEnum):
    """A column's type, mapped to each store's SQL type by `sql_type`."""

    TEXT = "text"
    INTEGER = "integer"
    REAL = "real"
    TIME = "time"
    JSON = "json"
    BOOL = "bool"


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


_SQL_TYPES = {
    Dialect.SQLITE: {
        Kind.TEXT: "TEXT",
        Kind.INTEGER: "INTEGER",
        Kind.REAL: "REAL",
        Kind.TIME: "TEXT",
        Kind.JSON: "TEXT",
        Kind.BOOL: "INTEGER",
    },
    Dialect.POSTGRESQL: {
        Kind.TEXT: "TEXT",
        Kind.INTEGER: "BIGINT",
        Kind.REAL: "DOUBLE PRECISION",
        Kind.TIME: "TEXT",
        Kind.JSON: "TEXT",
        Kind.BOOL: "INTEGER",
    },
}


def column(
    kind: Kind, *, default: Any = MISSING, primary: bool = False, sql_default: Any = MISSING
) -> Any:
    """A dataclass field that is a column; `default` is also its SQL default unless
    `sql_default` says otherwise (JSON columns: '{}')."""
    meta = {"kind": kind, "primary": primary, "sql_default": sql_default}
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def iso(when: datetime) -> str:
    """The stored form of a time."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def newest_first(
    table: str,
    clauses: list[str],
    params: list[Any],
    *,
    outcome: str | None,
    since: datetime | None,
    limit: int,
) -> tuple[str, tuple[Any, ...]]:
    """The SELECT of `table`'s rows that meet every clause (and `outcome`, `since` when given),
    newest first, at most `limit`, with its parameters: one filter for decisions and logins."""
    clauses, params = list(clauses), list(params)
    if outcome:
        clauses.append("outcome = ?")
        params.append(outcome)
    if since:
        clauses.append("time >= ?")
        params.append(iso(since))
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    sql = f"SELECT * FROM {table} {where} ORDER BY time DESC, id DESC LIMIT ?"  # noqa: S608
    return sql, (*params, limit)


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: Kind
    nullable: bool
    primary: bool
    default: Any

    def ddl(self, dialect: Dialect) -> str:
        """The column's definition in CREATE TABLE / ALTER TABLE ADD COLUMN."""
        parts = [self.name, _SQL_TYPES[dialect][self.kind]]
        if self.primary:
            parts.append("PRIMARY KEY")
        elif not self.nullable:
            parts.append("NOT NULL")
        if self.default is not MISSING and self.default is not None:
            parts.append("DEFAULT " + _sql_literal(self.default))
        return " ".join(parts)


@functools.cache
def columns(row: type) -> tuple[ColumnSpec, ...]:
    """The columns of a row class, in field order (computed once per class: every write asks)."""
    specs = []
    for f in fields(row):
        default: Any = f.metadata["sql_default"]
        if default is MISSING:
            default = f.default
        nullable = "None" in str(f.type)
        specs.append(
            ColumnSpec(f.name, f.metadata["kind"], nullable, bool(f.metadata["primary"]), default)
        )
    return tuple(specs)


@functools.cache
def column_names(row: type) -> tuple[str, ...]:
    return tuple(c.name for c in columns(row))


def create_table(row: type, dialect: Dialect) -> str:
    table: str = row.TABLE  # type: ignore[attr-defined]
    body = ",\n    ".join(c.ddl(dialect) for c in columns(row))
    return f"CREATE TABLE IF NOT EXISTS {table} (\n    {body}\n)"


def to_params(row: Any) -> tuple[Any, ...]:
    """A row's values as bound parameters, in column order."""
    values: list[Any] = []
    kind: type = type(row)
    for spec in columns(kind):
        value = getattr(row, spec.name)
        if value is None:
            values.append(None)
        elif spec.kind is Kind.TIME:
            values.append(iso(value) if isinstance(value, datetime) else str(value))
        elif spec.kind is Kind.JSON:
            values.append(json.dumps(value, sort_keys=True))
        elif spec.kind is Kind.BOOL:
            values.append(int(bool(value)))
        else:
            values.append(value)
    return tuple(values)


def from_record(row: type, record: dict[str, Any]) -> dict[str, Any]:
    """A stored record as the API shows it: JSON parsed, booleans as booleans, times as text."""
    out = dict(record)
    for spec in columns(row):
        if spec.name not in out:
            continue
        value = out[spec.name]
        if spec.kind is Kind.JSON and isinstance(value, str):
            out[spec.name] = json.loads(value)
        elif spec.kind is Kind.BOOL and value is not None:
            out[spec.name] = bool(value)
        elif spec.kind is Kind.REAL and value is not None:
            out[spec.name] = float(value)
    return out


@dataclass(frozen=True, kw_only=True)
class PayloadRow:
    """A raw payload, stored with the first record that names it, before its answer."""

    TABLE = "payloads"

    id: str = column(Kind.TEXT, primary=True)
    received_at: str = column(Kind.TIME)
    source: str = column(Kind.TEXT)
    remote: str = column(Kind.TEXT, default="")
    actor: str = column(Kind.TEXT, default="")
    group_key: str = column(Kind.TEXT, default="")
    truncated_alerts: int = column(Kind.INTEGER, default=0)
    body: str = column(Kind.TEXT, default="")


@dataclass(frozen=True, kw_only=True)
class DecisionRow:
    """One decision as stored: the Decision's recorded fields, plus who settled it."""

    TABLE = "decisions"

    id: str = column(Kind.TEXT, primary=True)
    payload_id: str | None = column(Kind.TEXT, default=None)
    time: datetime = column(Kind.TIME)
    source: str = column(Kind.TEXT)
    actor: str = column(Kind.TEXT, default="")
    group_key: str = column(Kind.TEXT, default="")
    fingerprint: str = column(Kind.TEXT, default="")
    alertname: str = column(Kind.TEXT, default="")
    trigger: str = column(Kind.TEXT, default="")
    labels: dict[str, str] = column(Kind.JSON, default=None, sql_default="{}")
    starts_at: datetime | None = column(Kind.TIME, default=None)
    namespace: str = column(Kind.TEXT, default="")
    deployment: str = column(Kind.TEXT, default="")
    from_revision: int | None = column(Kind.INTEGER, default=None)
    to_revision: int | None = column(Kind.INTEGER, default=None)
    from_replicaset: str = column(Kind.TEXT, default="")
    to_replicaset: str = column(Kind.TEXT, default="")
    outcome: str = column(Kind.TEXT)
    reason: str | None = column(Kind.TEXT, default=None)
    detail: str = column(Kind.TEXT, default="")
    dry_run: bool = column(Kind.BOOL, default=False)
    overrides: dict[str, bool] = column(Kind.JSON, default=None, sql_default="{}")
    replay_of: str | None = column(Kind.TEXT, default=None)
    duration_ms: float = column(Kind.REAL, default=0.0)
    # Schema 2: "" when the deciding worker recorded it, "reconciler" when completed later
    # from its write-ahead intent and what the cluster shows.
    settled_by: str = column(Kind.TEXT, default="")

    @classmethod
    def from_decision(cls, decision: Decision, *, settled_by: str = "") -> DecisionRow:
        values = {name: getattr(decision, name) for name in DECISION_FIELDS}
        return cls(**values, settled_by=settled_by)


DECISION_FIELDS = tuple(n for n in column_names(DecisionRow) if n != "settled_by")


class IntentKind(StrEnum):
    ROLLBACK = "rollback"  # a Deployment write is planned
    DRY_RUN = "dry_run"  # no write: a claim against duplicates and the circuit breaker
    RESUME = "resume"  # a paused GitOps owner handed back (owner and Deployment writes)


class IntentState(StrEnum):
    OPEN = "open"  # recorded before the write; the decision row does not exist yet
    MARK_PENDING = "mark_pending"  # rolled back and recorded; the bad-revision mark is missing
    DONE = "done"


@dataclass(frozen=True, kw_only=True)
class IntentRow:
    """A write-ahead record: what a decision is about to do, written before it does it.

    `id` is the decision's id (the audit id the write puts into `auto-rollback/last-action`);
    `decision` holds the decision's row as it will be stored if the write lands, so whoever
    settles the intent (the worker, or the reconciler after a crash) stores the same record.
    """

    TABLE = "intents"

    id: str = column(Kind.TEXT, primary=True)
    time: str = column(Kind.TIME)
    kind: str = column(Kind.TEXT)
    state: str = column(Kind.TEXT)
    namespace: str = column(Kind.TEXT)
    deployment: str = column(Kind.TEXT)
    from_replicaset: str = column(Kind.TEXT, default="")
    to_replicaset: str = column(Kind.TEXT, default="")
    source: str = column(Kind.TEXT, default="")
    # The Deployment's resourceVersion the write is conditional on.
    resource_version: str = column(Kind.TEXT, default="")
    # The write as planned: the annotations it sets (last-action) and the bad-revision mark.
    planned: dict[str, Any] = column(Kind.JSON, default=None, sql_default="{}")
    decision: dict[str, Any] = column(Kind.JSON, default=None, sql_default="{}")
    settled_at: str | None = column(Kind.TIME, default=None)
    settled_by: str = column(Kind.TEXT, default="")


class LoginOutcome(StrEnum):
    """How a console login attempt ended (what the rate limit counts: all but OK)."""

    OK = "ok"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, kw_only=True)
class ConsoleSessionRow:
    """A console session (schema 3): the cookie names it by a random id stored only as its
    SHA-256; logout and token rotation delete the row, and every replica then refuses it."""

    TABLE = "console_sessions"

    id_hash: str = column(Kind.TEXT, primary=True)
    name: str = column(Kind.TEXT)
    # Which on-call token it was issued under (a digest): a rotated token ends its sessions.
    key_id: str = column(Kind.TEXT)
    created: str = column(Kind.TIME)
    expires: str = column(Kind.TIME)


@dataclass(frozen=True, kw_only=True)
class LoginAttemptRow:
    """One console login attempt (schema 3): the record of refusals, and what the login rate
    limit counts, the same for every replica on the store."""

    TABLE = "console_logins"

    id: str = column(Kind.TEXT, primary=True)
    time: str = column(Kind.TIME)
    client: str = column(Kind.TEXT, default="")
    name: str = column(Kind.TEXT, default="")
    outcome: str = column(Kind.TEXT)
    detail: str = column(Kind.TEXT, default="")


_EMPTY_AS_OBJECT = tuple(column_names(DecisionRow).index(n) for n in ("labels", "overrides"))


def decision_row_params(row: DecisionRow) -> tuple[Any, ...]:
    params = list(to_params(row))
    # labels / overrides default to {} (a None there means "no value", stored as '{}').
    for index in _EMPTY_AS_OBJECT:
        if params[index] is None or params[index] == "null":
            params[index] = "{}"
    return tuple(params)
