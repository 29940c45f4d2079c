from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.receiver.harness import Harness
from webhook.sandbox.testing import SandboxHandle


@pytest.fixture
def make_harness(sandbox: SandboxHandle, tmp_path: Path) -> Callable[..., Harness]:
    """Build a receiver against the test's sandbox with some settings overridden."""

    def make(**settings: Any) -> Harness:
        return Harness(sandbox, tmp_path, **settings)

    return make


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()
