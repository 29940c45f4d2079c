from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.receiver.harness import Harness
from tests.tracker.support import FakeClock
from webhook.sandbox.testing import SandboxHandle


@pytest.fixture
def make_harness(sandbox: SandboxHandle, tmp_path: Path) -> Callable[..., Harness]:
    """A receiver against the test's sandbox (settings overridable), for alerts and reads."""

    def make(**settings: Any) -> Harness:
        return Harness(sandbox, tmp_path, **settings)

    return make


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
