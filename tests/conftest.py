"""Shared fixtures: a fresh sandbox cluster per test (see docs/sandbox.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from webhook.sandbox.testing import SandboxHandle


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxHandle]:
    """A sandbox on a free loopback port, with its kubeconfig in tmp_path; stopped after."""
    handle = SandboxHandle.start(workdir=tmp_path)
    try:
        yield handle
    finally:
        handle.stop()
