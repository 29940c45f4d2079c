"""Fixtures of the rules tests: promtool of both generations, and the rule file per test.

`promtool` is parametrised: every test that takes it runs on promtool 2.42 (Debian package
prometheus) and on promtool 3.x (built from lab/go/prometheus3 by scripts/build-go.sh).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.extract import write_rule_file
from tests.binaries import require_binary, require_built
from tests.rules.support import MANIFEST, RULE_FILE_NAME

GENERATIONS = ("2.42", "3.x")


@pytest.fixture(params=GENERATIONS, ids=lambda generation: f"promtool-{generation}")
def promtool(request: pytest.FixtureRequest) -> str:
    if request.param == "2.42":
        return require_binary("promtool")
    return require_built("promtool3")


@pytest.fixture
def extracted_rules(tmp_path: Path) -> Path:
    """The shipped manifest's groups as a plain rule file (what promtool can read)."""
    return write_rule_file(tmp_path / RULE_FILE_NAME, MANIFEST)
