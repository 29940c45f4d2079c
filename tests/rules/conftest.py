"""Fixtures of the rules tests: promtool, and the rule file extracted from the manifest per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.extract import write_rule_file
from tests.binaries import require_binary
from tests.rules.support import MANIFEST, RULE_FILE_NAME


@pytest.fixture
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture
def extracted_rules(tmp_path: Path) -> Path:
    """The shipped manifest's groups as a plain rule file (what promtool can read)."""
    return write_rule_file(tmp_path / RULE_FILE_NAME, MANIFEST)
