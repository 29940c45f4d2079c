"""Two transactions of one payload may both carry its deferred raw payload row.

A payload stored with `store_payload(..., deferred=True)` is written in the transaction of the
first row that names it. A payload's groups are decided side by side (webhook.fanout), and a
record reads the pending payload row before it takes the write transaction, so two of them can
both read it and both insert it: the second insert must be a no-op (INSERT_PAYLOAD's
`ON CONFLICT (id) DO NOTHING`), not an error that turns the second group's record into a 503.

The interleaving is forced, not hoped for: another connection holds what every payload write
needs (SQLite: the file's write lock, BEGIN IMMEDIATE; PostgreSQL: an EXCLUSIVE lock on the
payloads table) until both writers have read the pending row, so neither can commit first.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lab.postgres import PostgresServer
from webhook import contract
from webhook.audit import AuditStore, GateRule, IntentKind, IntentRow, IntentState, SqliteStore
from webhook.audit.payloads import PendingPayloads
from webhook.audit.postgresql import PostgresStore
from webhook.audit.rows import PayloadRow
from webhook.decision import Decision, new_id

START = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
WAIT = 20.0  # seconds: a bound on waits for the other threads, never reached when all is well


class WatchedPending(PendingPayloads):
    """The real pending payloads, telling each thread's read of them (rows_for) as it ends."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[str, list[list[PayloadRow]]] = {}
        self.read = {"first": threading.Event(), "second": threading.Event()}

    def rows_for(self, ids: Iterable[str | None]) -> list[PayloadRow]:
        rows = super().rows_for(ids)
        name = threading.current_thread().name
        self.reads.setdefault(name, []).append(rows)
        if name in self.read:
            self.read[name].set()
        return rows


class WatchedSqlite(SqliteStore):
    """The SQLite store, telling when the first writer's transaction has the store's own write
    lock and is about to BEGIN IMMEDIATE (polling while another connection holds the file's)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._pending = WatchedPending()
        self.beginning = threading.Event()

    def _when_unlocked(self, db: sqlite3.Connection, sql: str, deadline: float) -> None:
        if sql == "BEGIN IMMEDIATE" and threading.current_thread().name == "first":
            self.beginning.set()
        super()._when_unlocked(db, sql, deadline)


class WatchedPostgres(PostgresStore):
    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self._pending = WatchedPending()


class Race:
    """One store of the backend and a hold on its payload writes from another connection."""

    def __init__(self, store: AuditStore, hold: Callable[[], Iterator[None]]) -> None:
        self.store = store
        self.hold = contextmanager(hold)

    @property
    def pending(self) -> WatchedPending:
        pending = self.store._pending
        assert isinstance(pending, WatchedPending)
        return pending


@pytest.fixture
def race(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Race]:
    store: AuditStore
    if backend == "sqlite":
        # A writer polls the held file until BUSY_TIMEOUT_SECONDS from its start: the hold
        # must end before that even on a loaded machine (it ends once both have read).
        monkeypatch.setattr("webhook.audit.sqlite.BUSY_TIMEOUT_SECONDS", 3 * WAIT)
        path = tmp_path / "audit.sqlite"
        store = WatchedSqlite(path)

        def hold() -> Iterator[None]:
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # the file's write lock, as another process
            try:
                yield
            finally:
                other.execute("ROLLBACK")
                other.close()

    else:
        import psycopg

        # Likewise a waiting INSERT is cancelled STATEMENT_TIMEOUT_MS after it started.
        monkeypatch.setattr("webhook.audit.postgresql.STATEMENT_TIMEOUT_MS", int(3 * WAIT * 1000))
        server: PostgresServer = request.getfixturevalue("postgres_server")
        dsn = server.create_database()
        store = WatchedPostgres(dsn)

        def hold() -> Iterator[None]:
            with psycopg.connect(dsn) as other:  # a transaction until the block ends
                other.execute("LOCK TABLE payloads IN EXCLUSIVE MODE")  # INSERTs wait
                try:
                    yield
                finally:
                    other.rollback()

    store.prepare()  # the schema, before the hold (prepare writes)
    try:
        yield Race(store, hold)
    finally:
        store.close()


def decision(i: int, payload_id: str, *, outcome: str = "skipped") -> Decision:
    when = START + timedelta(seconds=i)
    return Decision(
        id=new_id(when),
        time=when,
        source="alertmanager",
        outcome=outcome,
        namespace="shop",
        deployment=f"app{i}",
        labels={"alertname": "A"},
        payload_id=payload_id,
    )


def deferred_payload(store: AuditStore) -> str:
    return store.store_payload(
        '{"alerts": ["a", "b"]}', received_at=START, source="alertmanager", deferred=True
    )


class Writer(threading.Thread):
    """A writer thread that keeps its exception for the test to raise."""

    def __init__(self, name: str, work: Callable[[], object]) -> None:
        super().__init__(name=name, daemon=True)
        self.work = work
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def finish(self) -> None:
        self.join(timeout=WAIT)
        assert not self.is_alive(), f"{self.name} writer still waiting"
        if self.error is not None:
            raise AssertionError(f"{self.name} writer failed: {self.error!r}") from self.error


def assert_stored_once(store: AuditStore, payload_id: str, decisions: list[Decision]) -> None:
    stored = store.payload(payload_id)
    assert stored is not None and stored.body == '{"alerts": ["a", "b"]}'
    assert [p.id for p in store.payloads()] == [payload_id]
    for d in decisions:
        row = store.get(d.id)
        assert row is not None and row["payload_id"] == payload_id


def test_two_groups_records_that_both_carry_the_payload_both_succeed(race: Race) -> None:
    store = race.store
    payload_id = deferred_payload(store)
    one, two = decision(1, payload_id), decision(2, payload_id)
    first = Writer("first", lambda: store.record_many([one]))
    second = Writer("second", lambda: store.record_many([two]))
    with race.hold():
        first.start()
        assert race.pending.read["first"].wait(WAIT)
        # The first has read the pending row and now waits for the write (SQLite: in BEGIN
        # IMMEDIATE, holding the store's own write lock; PostgreSQL: on the table lock).
        second.start()
        assert race.pending.read["second"].wait(WAIT)
        # The second has read it too, before the first could commit it and mark it stored.
    first.finish()
    second.finish()
    for name in ("first", "second"):
        [rows] = race.pending.reads[name]
        assert [r.id for r in rows] == [payload_id], f"the {name} record did not carry it"
    assert_stored_once(store, payload_id, [one, two])


def test_a_gate_claim_and_a_record_that_both_carry_the_payload_both_succeed(race: Race) -> None:
    # One group's rollback claims its intent (the gate's transaction carries the payload, read
    # inside that transaction) while another group of the payload records a decision (read
    # before its transaction).
    store = race.store
    payload_id = deferred_payload(store)
    rollback, skip = decision(1, payload_id, outcome="rolled_back"), decision(2, payload_id)
    claim = IntentRow(
        id=rollback.id,
        time=rollback.time.isoformat(),
        kind=IntentKind.ROLLBACK,
        state=IntentState.OPEN,
        namespace=rollback.namespace,
        deployment=rollback.deployment,
        from_replicaset="app1-2",
        to_replicaset="app1-1",
        source=rollback.source,
        resource_version="41",
        planned={"last_action": "{}"},
        decision={"payload_id": payload_id},
    )
    rule = GateRule(
        window_start=START - timedelta(hours=1),
        max_rollbacks=3,
        counted=(contract.ROLLED_BACK,),
        duplicate_since=None,
    )
    admitted: list[bool] = []
    first = Writer("first", lambda: admitted.append(store.begin_intent(claim, rule).admitted))
    second = Writer("second", lambda: store.record_many([skip]))
    with race.hold():
        first.start()
        if isinstance(store, WatchedSqlite):
            # The gate holds the store's write lock, polling BEGIN IMMEDIATE: its claim reads
            # the pending row once the file is free, before the record (queued) can commit.
            assert store.beginning.wait(WAIT)
        else:
            assert race.pending.read["first"].wait(WAIT)  # read, its INSERT waiting
        second.start()
        assert race.pending.read["second"].wait(WAIT)
    first.finish()
    second.finish()
    assert admitted == [True]
    for name in ("first", "second"):
        [rows] = race.pending.reads[name]
        assert [r.id for r in rows] == [payload_id], f"the {name} writer did not carry it"
    intent = store.intent(rollback.id)
    assert intent is not None and intent.decision == {"payload_id": payload_id}
    assert_stored_once(store, payload_id, [skip])
