from __future__ import annotations

from pathlib import Path

import pytest

from tests.oncall.support import OnCall
from tests.receiver.harness import Harness
from webhook.sandbox.testing import SandboxHandle


@pytest.fixture
def oncall(sandbox: SandboxHandle, tmp_path: Path) -> OnCall:
    """The full app against a fresh sandbox, default settings."""
    return OnCall(Harness(sandbox, tmp_path))
