"""Every behaviour of the rules (tests/rules/behaviours.py) as a promtool suite, both generations.

Each scenario is rendered into a `promtool test rules` file beside the rule file extracted from the
shipped manifest, and run by promtool 2.42 and promtool 3.x (the `promtool` fixture).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.rules.behaviours import BEHAVIOURS
from tests.rules.support import run

pytestmark = pytest.mark.promtool


@pytest.mark.parametrize("name", sorted(BEHAVIOURS))
def test_behaviour(promtool: str, extracted_rules: Path, name: str):
    suite = extracted_rules.parent / f"{name}.yaml"
    suite.write_text(yaml.safe_dump(BEHAVIOURS[name]().suite(extracted_rules.name), width=10**6))
    result = run([promtool, "test", "rules", suite.name], cwd=extracted_rules.parent)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "SUCCESS" in result.stdout
