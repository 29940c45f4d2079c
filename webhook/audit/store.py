"""One audit interface over two stores: the SQL both speak, written once.

A backend (sqlite.py, postgresql.py) provides connections and transactions, the gate's
cross-process lock and its readiness checks; everything else (the statements, the gate's
count-and-claim, the write-ahead intents, the queries the audit API, console, replay and
tracker use) is here. SQL uses `?` placeholders; the PostgreSQL backend rewrites them.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from webhook import contract
from webhook.audit.console import ConsoleRecords
from webhook.audit.errors import AuditUnavailable
from webhook.audit.intents import GateAnswer, GateRule, SettledBy
from webhook.audit.payloads import INSERT_PAYLOAD, PendingPayloads
from webhook.audit.rows import (
    DecisionRow,
    Dialect,
    IntentKind,
    IntentRow,
    IntentState,
    PayloadRow,
    column_names,
    decision_row_params,
    from_record,
    iso,
    newest_first,
    to_params,
)
from webhook.audit.schema import SCHEMA_VERSION, fresh_statements, pending
from webhook.decision import Decision, new_id

log = logging.getLogger(__name__)

StoredPayload = PayloadRow

_DECISION_COLUMNS = column_names(DecisionRow)
_INTENT_COLUMNS = column_names(IntentRow)
# Older SQLite allows 999 bound values per statement: rows per multi-row INSERT.
_ROWS_PER_INSERT = 999 // len(_DECISION_COLUMNS)
# Outcomes whose decisions may hold a write-ahead intent to close (passed the gate, or a resume).
_GATED = frozenset(
    {contract.ROLLED_BACK, contract.DRY_RUN, contract.FAILED, contract.Outcome.RESUMED}
)
# /readyz runs the integrity check again when the last one is older than this.
INTEGRITY_MAX_AGE_SECONDS = 60.0
# An intent `l` whose rollback write landed: recorded rolled_back (its bad mark written, or
# still to write). Its parameters: _landed_params().
_LANDED_WRITE = (
    "l.kind = ? AND (l.state = ? OR EXISTS "
    "(SELECT 1 FROM decisions d WHERE d.id = l.id AND d.outcome = ?))"
)
# A landed intent from the same read (Deployment and resourceVersion) as the open intent `o`.
_LANDED_FROM_READ_OF_O = (
    "SELECT 1 FROM intents l WHERE l.namespace = o.namespace "  # noqa: S608 - constants only
    "AND l.deployment = o.deployment AND l.resource_version = o.resource_version "
    "AND " + _LANDED_WRITE
)


def _landed_params() -> tuple[str, ...]:
    return (IntentKind.ROLLBACK, IntentState.MARK_PENDING, contract.ROLLED_BACK)


_KIND_OF: dict[str, IntentKind] = {
    contract.ROLLED_BACK: IntentKind.ROLLBACK,
    contract.DRY_RUN: IntentKind.DRY_RUN,
}


class Tx(Protocol):
    """A connection inside a transaction (or autocommit for readers)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


@functools.lru_cache(maxsize=64)
def _insert_decisions_sql(rows: int) -> str:
    row = "(" + ", ".join("?" for _ in _DECISION_COLUMNS) + ")"
    values = ", ".join(row for _ in range(rows))
    return (
        f"INSERT INTO decisions ({', '.join(_DECISION_COLUMNS)}) VALUES {values} "  # noqa: S608
        "ON CONFLICT (id) DO NOTHING"
    )


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


# A write-ahead intent, in the gate's transaction (a rollback) or its own (a resume).
_INSERT_INTENT = (
    f"INSERT INTO intents ({', '.join(_INTENT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({_marks(_INTENT_COLUMNS)})"
)


class AuditStore(ConsoleRecords):
    """The audit: payloads, decisions, write-ahead intents, and the console's sessions and
    login attempts (console.py). Safe to share between threads.

    Nothing is opened when the object is built: the first use in a process connects and
    brings the schema up to date (`prepare`), so `serve` can build it before gunicorn forks
    and the master never touches the store.
    """

    dialect: ClassVar[Dialect]

    def __init__(self) -> None:
        self._prepared_pid = 0
        self._broken: str | None = None  # why the store failed its integrity check
        self._integrity_at = 0.0  # time.monotonic() of the last integrity check
        self._pending = PendingPayloads()

    # -- what a backend provides ---------------------------------------------------------------
    @abstractmethod
    def _transaction(self, *, gate: bool = False) -> AbstractContextManager[Tx]:
        """A write transaction; `gate` also takes the store-wide lock every replica shares."""

    @abstractmethod
    def _reader(self) -> AbstractContextManager[Tx]:
        """A connection for reads (errors raise AuditUnavailable)."""

    @abstractmethod
    def _tables(self, tx: Tx) -> set[str]: ...

    @abstractmethod
    def _columns_of(self, tx: Tx, table: str) -> set[str]: ...

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, for messages (no credentials)."""

    def check_integrity(self) -> str | None:
        """Run the store's own consistency check; returns the problem (None: fine)."""
        return None

    def refresh_integrity(self) -> None:
        """Check again (the reconciler's loop): a failing store refuses writes and readiness."""
        self._broken = self.check_integrity()
        self._integrity_at = time.monotonic()
        if self._broken:
            log.error("%s failed its integrity check: %s", self.describe(), self._broken)

    def check_ready(self) -> None:
        """Readiness: connect, prove a write commits, and pass the integrity check.

        Raises AuditUnavailable naming the problem (unreachable, read-only, full, corrupt).
        """
        self._ensure()
        if time.monotonic() - self._integrity_at > INTEGRITY_MAX_AGE_SECONDS:
            self.refresh_integrity()
        if self._broken:
            raise AuditUnavailable(f"{self.describe()}: failed its integrity check: {self._broken}")
        with self._transaction() as tx:
            tx.execute(
                "INSERT INTO probe (id, written_at, writer) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at, "
                "writer = excluded.writer",
                (iso(datetime.now().astimezone()), str(os.getpid())),
            )

    check_writable = check_ready

    @abstractmethod
    def close(self) -> None:
        """Close this process's connections (a later use reopens them)."""

    # -- schema --------------------------------------------------------------------------------
    def prepare(self) -> int:
        """Create or upgrade the schema; returns the version found (0: empty store).

        Raises SchemaTooNew for a store newer than this code, AuditUnavailable otherwise.
        """
        with self._transaction(gate=True) as tx:
            tables = self._tables(tx)
            if "decisions" not in tables:
                for statement in fresh_statements(self.dialect):
                    tx.execute(statement)
                self._stamp(tx, SCHEMA_VERSION, "created")
                found = 0
            else:
                found = 1
                if "schema_version" in tables:
                    rows = tx.query("SELECT MAX(version) AS v FROM schema_version")
                    found = int(rows[0]["v"] or 1)
                for migration in pending(found):
                    if "schema_version" not in self._tables(tx):
                        tx.execute(
                            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER "
                            "PRIMARY KEY, applied_at TEXT NOT NULL, description TEXT NOT NULL "
                            "DEFAULT '')"
                        )
                        self._stamp(tx, 1, "found without a version (single-replica SQLite)")
                    for statement in migration.statements(
                        self.dialect, lambda table: self._columns_of(tx, table)
                    ):
                        tx.execute(statement)
                    self._stamp(tx, migration.version, migration.description)
                    log.info(
                        "audit %s: upgraded schema to version %d (%s)",
                        self.describe(),
                        migration.version,
                        migration.description,
                    )
        self.refresh_integrity()
        self._prepared_pid = os.getpid()
        return found

    @staticmethod
    def _stamp(tx: Tx, version: int, description: str) -> None:
        tx.execute(
            "INSERT INTO schema_version (version, applied_at, description) VALUES (?, ?, ?)",
            (version, iso(datetime.now().astimezone()), description),
        )

    def schema_version(self) -> int:
        self._ensure()
        with self._reader() as db:
            return int(db.query("SELECT MAX(version) AS v FROM schema_version")[0]["v"])

    def _ensure(self) -> None:
        if self._prepared_pid != os.getpid():
            self.prepare()

    def _writable(self) -> None:
        self._ensure()
        if self._broken:
            raise AuditUnavailable(f"{self.describe()}: failed its integrity check: {self._broken}")

    # -- writes --------------------------------------------------------------------------------
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
        deferred: bool = False,
    ) -> str:
        """Store a raw payload durably and return its id.

        `deferred`: store it with the first row that names it (webhook.audit.payloads); the
        caller then calls `flush_payload` before it answers.
        """
        self._writable()
        row = PayloadRow(
            id="p" + new_id(received_at)[1:],
            received_at=iso(received_at),
            source=source,
            remote=remote,
            actor=actor,
            group_key=group_key,
            truncated_alerts=truncated_alerts,
            body=body,
        )
        self._pending.add(row)
        if not deferred:
            self.flush_payload(row.id)
        return row.id

    def flush_payload(self, payload_id: str) -> None:
        """Store a deferred payload if no row has carried it yet (a no-op once one has)."""
        rows = self._pending.rows_for([payload_id])
        if not rows:
            return
        try:
            with self._transaction() as tx:
                self._carry(tx, rows)
        except AuditUnavailable:
            self._pending.forget(payload_id)  # unanswered: Alertmanager sends it again
            raise
        self._pending.stored(rows)

    def forget_payload(self, payload_id: str) -> None:
        """Drop a deferred payload no row has carried (its delivery was refused with a 503)."""
        self._pending.forget(payload_id)

    @staticmethod
    def _carry(tx: Tx, rows: list[PayloadRow]) -> None:
        for row in rows:
            tx.execute(INSERT_PAYLOAD, to_params(row))

    def record(self, decision: Decision) -> None:
        """Store one decision."""
        self.record_many([decision])

    def record_many(self, decisions: list[Decision], *, mark_pending: Iterable[str] = ()) -> None:
        """Store decisions in one transaction and close the intents they settle.

        A decision already stored (a reconciler got there first) is left as it is. The intents
        of `mark_pending` ids stay open for the reconciler to finish their bad-revision mark.
        """
        if not decisions:
            return
        self._writable()
        rows = [decision_row_params(DecisionRow.from_decision(d)) for d in decisions]
        gated = [d.id for d in decisions if d.outcome in _GATED]
        waiting = set(mark_pending)
        chunks = [rows[i : i + _ROWS_PER_INSERT] for i in range(0, len(rows), _ROWS_PER_INSERT)]
        now = iso(datetime.now().astimezone())
        carried = self._pending.rows_for(d.payload_id for d in decisions)
        with self._transaction() as tx:
            self._carry(tx, carried)
            for chunk in chunks:
                tx.execute(_insert_decisions_sql(len(chunk)), [v for row in chunk for v in row])
            for state, ids in (
                (IntentState.DONE, [i for i in gated if i not in waiting]),
                (IntentState.MARK_PENDING, [i for i in gated if i in waiting]),
            ):
                if ids:
                    tx.execute(
                        f"UPDATE intents SET state = ?, settled_at = ?, settled_by = ? "  # noqa: S608
                        f"WHERE state = ? AND id IN ({_marks(ids)})",
                        (state, now, SettledBy.WORKER, IntentState.OPEN, *ids),
                    )
        self._pending.stored(carried)

    def prune(self, *, retention_days: int, now: datetime) -> int:
        """Delete decisions, payloads, settled intents and login attempts older than the
        retention, and expired console sessions."""
        self._writable()
        cutoff = iso(now - timedelta(days=retention_days))
        with self._transaction() as tx:
            gone = tx.execute("DELETE FROM decisions WHERE time < ?", (cutoff,))
            gone += tx.execute("DELETE FROM payloads WHERE received_at < ?", (cutoff,))
            tx.execute(
                "DELETE FROM intents WHERE time < ? AND state = ?", (cutoff, IntentState.DONE)
            )
            gone += self._prune_console(tx, cutoff=cutoff, now=iso(now))
        return gone

    # -- the gate and the write-ahead intents ---------------------------------------------
    @contextmanager
    def gate(self, rule: GateRule, key: tuple[str, str, str]) -> Iterator[GateTicket]:
        """The gate's transaction: the counts as every replica sees them, under the store-wide
        lock until the block ends; `ticket.claim(intent)` records the intent in it."""
        self._writable()
        kinds = [_KIND_OF[o] for o in rule.counted if o in _KIND_OF]
        since = iso(rule.window_start)
        with self._transaction(gate=True) as tx:
            # ONE statement: under READ COMMITTED each statement sees its own snapshot, and a
            # record committed between two counts (intent closed, decision stored) would be in
            # neither. A record's writer does not take the gate lock; one snapshot suffices.
            # Open intents count once per read of a Deployment (its resourceVersion): writes
            # conditional on one read can land once at most, and none more once one has landed
            # (already counted with the decisions). Two decisions racing on one read therefore
            # hold one slot, never two for one rollback.
            counted = int(
                tx.query(
                    "SELECT (SELECT COUNT(*) FROM decisions "  # noqa: S608
                    f"WHERE outcome IN ({_marks(rule.counted)}) AND time >= ?) + "
                    "(SELECT COUNT(*) FROM (SELECT DISTINCT o.namespace, o.deployment, "
                    "o.resource_version, o.kind FROM intents o "
                    f"WHERE o.state = ? AND o.kind IN ({_marks(kinds)}) AND o.time >= ? "
                    f"AND NOT EXISTS ({_LANDED_FROM_READ_OF_O})) AS reads) AS n",
                    (
                        *rule.counted,
                        since,
                        IntentState.OPEN,
                        *kinds,
                        since,
                        *_landed_params(),
                    ),
                )[0]["n"]
            )
            earlier = None
            if rule.duplicate_since is not None and counted < rule.max_rollbacks:
                earlier = self._previous_dry_run(tx, key, iso(rule.duplicate_since))
            ticket = GateTicket(tx, counted=counted, duplicate_of=earlier, pending=self._pending)
            yield ticket
        self._pending.stored(ticket.carried)

    def begin_intent(self, intent: IntentRow | None, rule: GateRule) -> GateAnswer:
        """Count, check duplicates and (admitted, with an intent) record it: one transaction
        under the store-wide lock, so no two deciders anywhere see the same count."""
        key = (intent.namespace, intent.deployment, intent.from_replicaset) if intent else ("",) * 3
        with self.gate(rule, key) as ticket:
            if ticket.counted >= rule.max_rollbacks:
                return GateAnswer(admitted=False, counted=ticket.counted)
            if ticket.duplicate_of:
                return GateAnswer(False, ticket.counted, duplicate_of=ticket.duplicate_of)
            if intent is not None:
                ticket.claim(intent)
        return GateAnswer(admitted=True, counted=ticket.counted)

    @staticmethod
    def _previous_dry_run(tx: Tx, key: tuple[str, str, str], since: str) -> str | None:
        # One statement (one snapshot), for the reason given in gate().
        rows = tx.query(
            "SELECT id, time FROM decisions WHERE namespace = ? AND deployment = ? "
            "AND from_replicaset = ? AND outcome = ? AND source = ? AND time >= ? "
            "UNION ALL SELECT id, time FROM intents WHERE namespace = ? AND deployment = ? "
            "AND from_replicaset = ? AND kind = ? AND state = ? AND source = ? AND time >= ? "
            "ORDER BY time DESC LIMIT 1",
            (
                *key,
                contract.DRY_RUN,
                contract.Source.ALERTMANAGER,
                since,
                *key,
                IntentKind.DRY_RUN,
                IntentState.OPEN,
                contract.Source.ALERTMANAGER,
                since,
            ),
        )
        return str(rows[0]["id"]) if rows else None

    def open_intent(self, intent: IntentRow) -> str | None:
        """Record an intent no limit counts (a resume), before its write, unless an intent of
        the same kind for the same Deployment is still open: then that one's id, and nothing
        is recorded. Under the store-wide gate lock, so two replicas never both record one."""
        self._writable()
        with self._transaction(gate=True) as tx:
            rows = tx.query(
                "SELECT id FROM intents WHERE namespace = ? AND deployment = ? AND kind = ? "
                "AND state = ? LIMIT 1",
                (intent.namespace, intent.deployment, intent.kind, IntentState.OPEN),
            )
            if rows:
                return str(rows[0]["id"])
            tx.execute(_INSERT_INTENT, to_params(intent))
        return None

    def cancel_intent(self, intent_id: str) -> None:
        """The planned write definitely did not happen (409): forget the open intent."""
        with self._transaction() as tx:
            tx.execute(
                "DELETE FROM intents WHERE id = ? AND state = ?", (intent_id, IntentState.OPEN)
            )

    def open_intents(self, *, before: datetime | None = None) -> list[IntentRow]:
        """Intents not yet settled (open, or rolled back with the mark missing), oldest first."""
        self._ensure()
        clauses = ["state IN (?, ?)"]
        params: list[str] = [IntentState.OPEN, IntentState.MARK_PENDING]
        if before is not None:
            clauses.append("time < ?")
            params.append(iso(before))
        with self._reader() as db:
            rows = db.query(
                f"SELECT * FROM intents WHERE {' AND '.join(clauses)} ORDER BY time",  # noqa: S608
                params,
            )
        return [_intent(r) for r in rows]

    def settle(self, intent: IntentRow, *, record: DecisionRow | None, state: IntentState) -> bool:
        """Settle an intent (the reconciler): store its record unless one exists, set `state`.

        Returns False when someone else settled it meanwhile (nothing written then).
        """
        self._writable()
        with self._transaction() as tx:
            moved = tx.execute(
                "UPDATE intents SET state = ?, settled_at = ?, settled_by = ? "
                "WHERE id = ? AND state = ?",
                (
                    state,
                    iso(datetime.now().astimezone()),
                    SettledBy.RECONCILER,
                    intent.id,
                    intent.state,
                ),
            )
            if moved and record is not None:
                tx.execute(_insert_decisions_sql(1), decision_row_params(record))
        return bool(moved)

    # -- reads used by the decision --------------------------------------------------------
    def count_outcomes_since(self, outcomes: Iterable[str], since: datetime) -> int:
        """Decisions with any of `outcomes` at or after `since` (one query)."""
        self._ensure()
        wanted = list(outcomes)
        with self._reader() as db:
            row = db.query(
                f"SELECT COUNT(*) AS n FROM decisions WHERE outcome IN ({_marks(wanted)}) "  # noqa: S608
                "AND time >= ?",
                (*wanted, iso(since)),
            )[0]
        return int(row["n"])

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
        self._ensure()
        wanted = list(outcomes)
        with self._reader() as db:
            rows = db.query(
                "SELECT id FROM decisions WHERE namespace = ? AND deployment = ? "  # noqa: S608
                f"AND from_replicaset = ? AND outcome IN ({_marks(wanted)}) AND source = ? "
                "AND time >= ? ORDER BY time DESC LIMIT 1",
                (namespace, deployment, from_replicaset, *wanted, source, iso(since)),
            )
        return str(rows[0]["id"]) if rows else None

    # -- queries (audit API, console, CLI, tracker) -------------------------------------------
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
        self._ensure()
        clauses: list[str] = []
        params: list[Any] = []
        for name, value in (("namespace", namespace), ("deployment", deployment)):
            if value:
                clauses.append(f"{name} = ?")
                params.append(value)
        if before_id:
            clauses.append("(time, id) < (SELECT time, id FROM decisions WHERE id = ?)")
            params.append(before_id)
        select = newest_first(
            "decisions", clauses, params, outcome=outcome, since=since, limit=limit
        )
        with self._reader() as db:
            rows = db.query(*select)
        return [from_record(DecisionRow, r) for r in rows]

    def get(self, decision_id: str) -> dict[str, Any] | None:
        self._ensure()
        with self._reader() as db:
            rows = db.query("SELECT * FROM decisions WHERE id = ?", (decision_id,))
        return from_record(DecisionRow, rows[0]) if rows else None

    def replays_of(self, decision_id: str) -> list[dict[str, Any]]:
        self._ensure()
        with self._reader() as db:
            rows = db.query(
                "SELECT * FROM decisions WHERE replay_of = ? ORDER BY time", (decision_id,)
            )
        return [from_record(DecisionRow, r) for r in rows]

    def payload(self, payload_id: str) -> StoredPayload | None:
        self._ensure()
        with self._reader() as db:
            rows = db.query("SELECT * FROM payloads WHERE id = ?", (payload_id,))
        return StoredPayload(**rows[0]) if rows else None

    def payloads(self, *, limit: int = 100) -> list[StoredPayload]:
        self._ensure()
        with self._reader() as db:
            rows = db.query("SELECT * FROM payloads ORDER BY received_at DESC LIMIT ?", (limit,))
        return [StoredPayload(**r) for r in rows]

    def intent(self, intent_id: str) -> IntentRow | None:
        self._ensure()
        with self._reader() as db:
            rows = db.query("SELECT * FROM intents WHERE id = ?", (intent_id,))
        return _intent(rows[0]) if rows else None


class GateTicket:
    """The gate's counts inside its transaction, and the one write it allows."""

    def __init__(
        self, tx: Tx, *, counted: int, duplicate_of: str | None, pending: PendingPayloads
    ) -> None:
        self._tx = tx
        self._pending = pending
        self.carried: list[PayloadRow] = []  # deferred payloads this transaction stores
        self.counted = counted
        self.duplicate_of = duplicate_of

    def landed_from(self, namespace: str, deployment: str, resource_version: str) -> str | None:
        """The decision whose rollback of this Deployment, conditional on this same
        resourceVersion, has landed (its mark pending, or recorded rolled_back): a write from
        that read can only meet a 409 now. One statement, for the reason given in gate()."""
        rows = self._tx.query(
            "SELECT l.id FROM intents l WHERE l.namespace = ? AND l.deployment = ? "  # noqa: S608
            "AND l.resource_version = ? AND " + _LANDED_WRITE + " LIMIT 1",
            (namespace, deployment, resource_version, *_landed_params()),
        )
        return str(rows[0]["id"]) if rows else None

    def claim(self, intent: IntentRow) -> None:
        """Record the intent (and the deferred payload it names, in the same transaction)."""
        self.carried = self._pending.rows_for([intent.decision.get("payload_id")])
        AuditStore._carry(self._tx, self.carried)
        self._tx.execute(_INSERT_INTENT, to_params(intent))


def _intent(record: dict[str, Any]) -> IntentRow:
    data = from_record(IntentRow, record)
    return IntentRow(**data)
