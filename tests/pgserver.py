"""The suite's own PostgreSQL server (lab/postgres.py): one per session, a database per test.

Skips on a laptop without Debian's postgresql package, fails under CI=true (tests/binaries.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.postgres import PostgresServer, find_bindir
from tests.binaries import in_ci


def require_postgres() -> Path:
    """The directory of initdb and postgres; skip (fail under CI=true) without them."""
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    message = (
        "initdb/postgres not found on PATH or in /usr/lib/postgresql/*/bin "
        "(install Debian package postgresql; scripts/bootstrap.sh does as root)"
    )
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session, on a free loopback port, data in a temp dir."""
    server = PostgresServer.start(bindir=require_postgres())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """A fresh, empty database for one test."""
    return postgres_server.create_database()
