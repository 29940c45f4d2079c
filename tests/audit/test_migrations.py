"""An audit written before schema versions existed (the code of commit 208a7dd, dumped in
fixtures/v1-audit.sql by fixtures/make_v1_audit.py) opens with today's code: upgraded in place,
every old row kept and readable, the same columns as a store created fresh. A version 2 audit
(before the console's sessions and login attempts were in it) gains their tables and takes
them."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from lab.postgres import PostgresServer
from webhook.audit import AuditStore, SqliteStore
from webhook.audit.postgresql import PostgresStore
from webhook.audit.rows import (
    ConsoleSessionRow,
    DecisionRow,
    IntentRow,
    LoginAttemptRow,
    LoginOutcome,
    PayloadRow,
    column_names,
)
from webhook.audit.schema import MIGRATIONS, SCHEMA_VERSION, SchemaVersionRow

V1 = (Path(__file__).parent / "fixtures" / "v1-audit.sql").read_text()
ROLLED_BACK = "d-20261120T090000000-0000v1aa"


def v1_sqlite(path: Path) -> SqliteStore:
    db = sqlite3.connect(path)
    db.executescript(V1)
    db.close()
    return SqliteStore(path)


def v1_postgresql(server: PostgresServer) -> PostgresStore:
    dsn = server.create_database("v1")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(V1)  # the dump is plain SQL both stores accept
    return PostgresStore(dsn)


@pytest.fixture(params=["sqlite", "postgresql"])
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> AuditStore:
    if request.param == "sqlite":
        return v1_sqlite(tmp_path / "audit.sqlite")
    return v1_postgresql(request.getfixturevalue("postgres_server"))


def columns_of(store: AuditStore, table: str) -> set[str]:
    with store._reader() as db:
        return store._columns_of(db, table)


def test_an_old_audit_is_upgraded_on_first_use_and_keeps_every_row(old_store: AuditStore) -> None:
    assert old_store.prepare() == 1
    assert old_store.schema_version() == SCHEMA_VERSION
    row = old_store.get(ROLLED_BACK)
    assert row is not None
    assert row["outcome"] == "rolled_back" and row["from_replicaset"] == "web-2"
    assert row["labels"] == {"alertname": "RollbackRestartRate", "namespace": "shop"}
    assert row["settled_by"] == ""  # the new column, with its default
    assert [r["id"] for r in old_store.replays_of(ROLLED_BACK)] == ["d-20261120T090200000-0000v1cc"]
    assert {p.body for p in old_store.payloads()} == {'{"version": "4", "alerts": []}', "not json"}
    # and it takes today's writes: a payload, the gate, intents
    old_store.store_payload("{}", received_at=datetime.now(UTC), source="alertmanager")
    assert old_store.open_intents() == []
    old_store.check_ready()
    old_store.close()


def test_an_upgraded_audit_has_the_columns_of_a_fresh_one(
    old_store: AuditStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    old_store.prepare()
    if isinstance(old_store, SqliteStore):
        fresh: AuditStore = SqliteStore(tmp_path / "fresh.sqlite")
    else:
        fresh = PostgresStore(request.getfixturevalue("postgres_server").create_database())
    fresh.prepare()
    for row in (PayloadRow, DecisionRow, IntentRow, ConsoleSessionRow, LoginAttemptRow):
        assert (
            columns_of(old_store, row.TABLE)
            == columns_of(fresh, row.TABLE)
            == set(column_names(row))
        )
    old_store.close()
    fresh.close()


def test_an_old_audit_held_by_another_process_is_upgraded_once_it_is_free(
    tmp_path: Path,
) -> None:
    # A file written before WAL must be had alone to switch to WAL. Another process that holds
    # it (opening or upgrading it too) used to make the write connection's short busy timeout
    # give up at once: "database is locked", an unavailable audit, in one worker of several
    # starting together (CI met it through the test below).
    store = v1_sqlite(tmp_path / "audit.sqlite")
    other = sqlite3.connect(
        tmp_path / "audit.sqlite", isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    try:
        assert store.prepare() == 1  # waited for the file, then upgraded it
    finally:
        release.join()
        other.close()
    assert store.schema_version() == SCHEMA_VERSION
    store.close()


def test_two_processes_opening_an_old_audit_at_once_upgrade_it_once(
    old_store: AuditStore,
) -> None:
    clones = [
        SqliteStore(old_store.path)
        if isinstance(old_store, SqliteStore)
        else PostgresStore(old_store.dsn)  # type: ignore[attr-defined]
        for _ in range(4)
    ]
    found: list[int] = []
    threads = [threading.Thread(target=lambda s=s: found.append(s.prepare())) for s in clones]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(found) == [1, SCHEMA_VERSION, SCHEMA_VERSION, SCHEMA_VERSION]
    with clones[0]._reader() as db:
        versions = [r["version"] for r in db.query("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == [1, *range(2, SCHEMA_VERSION + 1)]
    for clone in clones:
        clone.close()


def as_version_2(store: AuditStore) -> None:
    """Bring a v1 store to version 2 exactly as the release before the console tables did."""
    [v2] = [m for m in MIGRATIONS if m.version == 2]
    with store._transaction(gate=True) as tx:
        tx.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL, "
            "description TEXT NOT NULL DEFAULT '')"
        )
        for statement in v2.statements(store.dialect, lambda t: store._columns_of(tx, t)):
            tx.execute(statement)
        for version in (1, 2):
            tx.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, "2026-11-25T00:00:00.000000+00:00"),
            )
        assert "console_sessions" not in store._tables(tx)


def test_a_version_2_audit_gains_the_console_tables_and_keeps_its_rows(
    old_store: AuditStore,
) -> None:
    as_version_2(old_store)
    assert old_store.prepare() == 2
    assert old_store.schema_version() == SCHEMA_VERSION == 4
    assert old_store.get(ROLLED_BACK) is not None
    with old_store._reader() as db:
        applied = db.query(f"SELECT * FROM {SchemaVersionRow.TABLE} ORDER BY version")
    assert [r["version"] for r in applied] == [1, 2, 3, 4]
    assert "console" in applied[2]["description"]
    assert "resume intents" in applied[3]["description"]
    # and the console's state is kept there
    now = datetime.now(UTC)
    old_store.open_session(
        "s1", name="alice", key_id="k1", created=now, expires=now + timedelta(hours=1)
    )
    assert old_store.session_active("s1", name="alice", key_id="k1", now=now)
    old_store.record_login(time=now, client="10.0.0.1", name="alice", outcome=LoginOutcome.FAILED)
    assert old_store.login_failures_since(now - timedelta(minutes=5), client="10.0.0.1") == 1
    old_store.close()
