"""Every behaviour test of the audit runs against both stores (SQLite file, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.postgres import PostgresServer
from webhook.audit import AuditStore, SqliteStore
from webhook.audit.postgresql import PostgresStore

MakeStore = Callable[[], AuditStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MakeStore]:
    """Stores on ONE database, as replicas share it: each make_store() is another client."""
    made: list[AuditStore] = []
    dsn = ""
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        dsn = server.create_database()
    path = tmp_path / "audit.sqlite"

    def make() -> AuditStore:
        store: AuditStore = PostgresStore(dsn) if dsn else SqliteStore(path)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> AuditStore:
    return make_store()
