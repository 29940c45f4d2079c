"""PostgreSQL unreachable or read-only: AuditUnavailable within seconds (503, not ready)."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

import psycopg
import pytest

from lab.postgres import PostgresServer
from webhook.audit import AuditUnavailable
from webhook.audit.postgresql import PostgresStore


def test_an_unreachable_database_is_unavailable_within_seconds() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = PostgresStore(f"postgresql://rollback:pw@127.0.0.1:{port}/audit")
    started = time.monotonic()
    with pytest.raises(AuditUnavailable) as raised:
        store.store_payload("{}", received_at=datetime.now(UTC), source="alertmanager")
    assert time.monotonic() - started < 10
    assert "pw" not in str(raised.value)
    store.close()


def test_a_read_only_database_is_not_ready_and_refuses_writes(
    postgres_server: PostgresServer,
) -> None:
    dsn = postgres_server.create_database()
    store = PostgresStore(dsn)
    store.check_ready()
    store.close()
    name = dsn.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    store = PostgresStore(dsn)
    with pytest.raises(AuditUnavailable, match="read-only"):
        store.check_ready()
    with pytest.raises(AuditUnavailable):
        store.store_payload("{}", received_at=datetime.now(UTC), source="alertmanager")
    store.close()
