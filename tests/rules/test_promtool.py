"""promtool 2.42 and 3.x on the shipped bundle: lint-clean rules and the suites of every alert.

The suites (tests/rules/promtool/*.yaml) run on the rule file extracted from
rules/rollback-rules.yaml at test time, never on a copy, so a change to the manifest is tested.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rules.extract import dump_rule_file, write_rule_file
from tests.rules.support import MANIFEST, RENDERED_SUITES, RULE_FILE_NAME, SUITES, run

pytestmark = pytest.mark.promtool

SUITE_FILES = sorted(SUITES.glob("*.yaml"))


def run_suite(promtool: str, suite: Path, rules_dir: Path) -> subprocess.CompletedProcess[str]:
    """`promtool test rules SUITE` beside the rule file its `rule_files:` names."""
    shutil.copy(suite, rules_dir / suite.name)
    return run([promtool, "test", "rules", suite.name], cwd=rules_dir)


def test_extracted_bundle_passes_promtool_check_with_every_lint(promtool: str, extracted_rules):
    result = run([promtool, "check", "rules", "--lint=all", "--lint-fatal", str(extracted_rules)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS: 23 rules found" in output
    assert "lint" not in output.lower() and "warning" not in output.lower(), output


def test_there_is_a_suite_per_alert():
    assert {path.stem for path in SUITE_FILES} == {"restart_rate", "oomkilled", "p99_latency"}


@pytest.mark.parametrize("suite", SUITE_FILES, ids=lambda path: path.stem)
def test_promtool_suite_passes_on_the_shipped_rules(
    promtool: str, extracted_rules: Path, suite: Path
):
    result = run_suite(promtool, suite, extracted_rules.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_suite_fails_when_a_rule_loses_its_current_revision_guard(
    promtool: str, extracted_rules: Path
):
    # The suites must be able to fail: without "the ReplicaSet of its Deployment that started
    # running pods last" a superseded young revision (shop/queue) would fire, and
    # restart_rate.yaml has to notice.
    document = yaml.safe_load(extracted_rules.read_text())
    [rule] = [
        rule
        for rule in document["groups"][0]["rules"]
        if rule.get("record") == "rollback_webhook:current_revision:active_since"
    ]
    guard = re.compile(
        r"\s*== on \(cluster, namespace, deployment\) group_left \(\)\s*"
        r"max by \(cluster, namespace, deployment\) "
        r"\(rollback_webhook:replicaset_active_since:timestamp\)"
    )
    rule["expr"], replaced = guard.subn("", rule["expr"])
    assert replaced == 1
    extracted_rules.write_text(dump_rule_file(document))
    result = run_suite(promtool, SUITES / "restart_rate.yaml", extracted_rules.parent)
    assert result.returncode != 0
    assert 'replicaset="queue-2222"' in result.stdout + result.stderr


def test_rendered_pipeline_rules_fire_the_latency_alert_within_minutes(
    promtool: str, tmp_path: Path
):
    # The documented render step (a shorter for:) is what a pipeline test loads into a real
    # prometheus: four minutes of the old revision are baseline enough, and the alert fires within
    # a minute or two of the rollout; with the shipped for: 5m it does not, in that time.
    suite = RENDERED_SUITES / "p99_latency_fast.yaml"
    write_rule_file(tmp_path / RULE_FILE_NAME, MANIFEST, for_override="10s")
    result = run_suite(promtool, suite, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    write_rule_file(tmp_path / RULE_FILE_NAME, MANIFEST)
    assert run_suite(promtool, suite, tmp_path).returncode != 0
