"""Shared fixtures: a fresh sandbox cluster per test (see docs/sandbox.md)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.receiver_harness import Harness
from sandbox.testing import SandboxHandle

# The suite's own PostgreSQL server (a session fixture) and a fresh database per test.
from tests.pgserver import postgres_dsn, postgres_server  # noqa: F401

# The real control plane's session fixtures (`controlplane`, `namespace`), one for every suite.
pytest_plugins = ("tests.controlplane.fixtures",)

# The slow tier: real Prometheus/Alertmanager (the pipeline and the demo), a browser, a real
# control plane, the wheel build. `pytest -m "not slow"` is the fast tier (README, Development).
SLOW_MARKERS = ("pipeline", "browser", "controlplane")
SLOW_DIRS = ("pipeline", "controlplane", "packaging")
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        parts = path.relative_to(TESTS).parts if path.is_relative_to(TESTS) else ()
        if (
            any(part in SLOW_DIRS for part in parts[:-1])
            or "browser" in path.name
            or any(item.get_closest_marker(marker) for marker in SLOW_MARKERS)
        ):
            item.add_marker(pytest.mark.slow)


# When set, every sandbox's request record is written there as it stops (one JSON file each,
# with the test's own token, so the service's requests can be told from the test's): the RBAC
# test derives the permissions the service uses from the receiver and tracker suites this way.
RECORD_DIR_ENV = "ROLLBACK_WEBHOOK_SANDBOX_RECORD_DIR"


@pytest.fixture
def sandbox(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SandboxHandle]:
    """A sandbox on a free loopback port, with its kubeconfig in tmp_path; stopped after."""
    handle = SandboxHandle.start(workdir=tmp_path)
    try:
        yield handle
    finally:
        handle.stop()
        record_dir = os.environ.get(RECORD_DIR_ENV)
        if record_dir:
            dump = {
                "test": request.node.nodeid,
                "test_token": handle.token,
                "entries": handle.server.record.entries(),
            }
            path = Path(record_dir) / f"{uuid.uuid4().hex}.json"
            path.write_text(json.dumps(dump))


@pytest.fixture
def make_harness(sandbox: SandboxHandle, tmp_path: Path) -> Callable[..., Harness]:
    """Build a receiver (service + app) against the test's sandbox, some settings overridden."""

    def make(**settings: Any) -> Harness:
        return Harness(sandbox, tmp_path, **settings)

    return make


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    """A receiver with the default settings against the test's sandbox."""
    return make_harness()
