from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lab.receiver_harness import Harness
from sandbox.testing import SandboxHandle
from tests.oncall.support import OnCall


@pytest.fixture
def oncall(sandbox: SandboxHandle, tmp_path: Path) -> OnCall:
    """The full app (receiver, on-call API, console) against a fresh sandbox."""
    return OnCall(Harness(sandbox, tmp_path))


@pytest.fixture(params=["sqlite", "postgresql"])
def on_each_store(
    request: pytest.FixtureRequest, make_harness: Callable[..., Harness], tmp_path: Path
) -> Harness:
    """A receiver with default settings on each audit store: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        return make_harness()
    (tmp_path / "dsn").write_text(request.getfixturevalue("postgres_dsn"))
    return make_harness(audit={"backend": "postgresql", "dsn_file": str(tmp_path / "dsn")})
