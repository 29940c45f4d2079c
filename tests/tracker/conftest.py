from __future__ import annotations

import pytest

from tests.tracker.support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A settable clock, so minutes of health pass without sleeping."""
    return FakeClock()
