from __future__ import annotations

from pathlib import Path

import pytest

from lab.receiver_harness import Harness
from sandbox.testing import SandboxHandle
from tests.oncall.support import OnCall


@pytest.fixture
def oncall(sandbox: SandboxHandle, tmp_path: Path) -> OnCall:
    """The full app (every route group) against a fresh sandbox."""
    return OnCall(Harness(sandbox, tmp_path))
