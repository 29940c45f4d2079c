"""Shared fixtures: a fresh sandbox cluster per test (see docs/sandbox.md)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from webhook.sandbox.testing import SandboxHandle

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
