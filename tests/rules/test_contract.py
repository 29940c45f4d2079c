"""Every alert of the bundle carries what the receiver requires, read from webhook/contract.py.

Static labels and annotations are checked on the manifest. The labels an alert takes from its
expression (namespace, deployment, replicaset) are proven by the promtool suites, whose expected
alerts must list exactly the contract's labels: test_promtool.py runs those suites, so together the
rules, the suites and the receiver cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from rules.extract import alerting_rules
from tests.rules.support import ALERTMANAGER_FRAGMENT, MANIFEST, RUNBOOK, SUITES
from webhook.contract import LABEL_TRIGGER, RULE_ANNOTATIONS, RULE_LABELS, TRIGGERS

RUNBOOK_BASE = "https://github.com/rollback-webhook/rollback-webhook/blob/main/docs/runbook.md"
# Labels the rule itself sets; the others must come from the expression.
STATIC_LABELS = {LABEL_TRIGGER, "severity"}

ALERTS = alerting_rules(MANIFEST)


def _expected_alerts(alertname: str) -> list[dict[str, Any]]:
    """Every exp_alerts entry for `alertname` across the promtool suites."""
    found: list[dict[str, Any]] = []
    for suite in sorted(SUITES.glob("*.yaml")):
        for test in yaml.safe_load(suite.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case["alertname"] == alertname:
                    found.extend(case.get("exp_alerts") or [])
    return found


def _github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub generates for the headings of a markdown file."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_each_trigger_has_exactly_one_alert():
    triggers = [rule.get("labels", {}).get(LABEL_TRIGGER) for rule in ALERTS]
    assert sorted(triggers) == sorted(TRIGGERS)


@pytest.mark.parametrize("rule", ALERTS, ids=lambda rule: rule["alert"])
def test_alert_sets_the_static_contract_labels(rule: dict[str, Any]):
    labels = rule.get("labels", {})
    assert set(labels) == STATIC_LABELS
    assert STATIC_LABELS <= set(RULE_LABELS)
    assert labels[LABEL_TRIGGER] in TRIGGERS
    assert labels["severity"] in {"critical", "warning"}


@pytest.mark.parametrize("rule", ALERTS, ids=lambda rule: rule["alert"])
def test_suites_expect_exactly_the_contract_labels_when_the_alert_fires(rule: dict[str, Any]):
    expected = _expected_alerts(rule["alert"])
    assert expected, f"no promtool suite expects {rule['alert']} to fire"
    for alert in expected:
        assert set(alert["exp_labels"]) == set(RULE_LABELS)
        assert alert["exp_labels"][LABEL_TRIGGER] == rule["labels"][LABEL_TRIGGER]
        assert set(alert["exp_annotations"]) == set(RULE_ANNOTATIONS)


@pytest.mark.parametrize("rule", ALERTS, ids=lambda rule: rule["alert"])
def test_alert_carries_the_contract_annotations(rule: dict[str, Any]):
    annotations = rule.get("annotations", {})
    assert set(RULE_ANNOTATIONS) <= set(annotations)
    for name in ("summary", "description"):
        for label in ("namespace", "deployment", "replicaset"):
            assert f"$labels.{label}" in annotations[name], (rule["alert"], name, label)


@pytest.mark.parametrize("rule", ALERTS, ids=lambda rule: rule["alert"])
def test_runbook_url_points_at_an_existing_runbook_section(rule: dict[str, Any]):
    url = rule["annotations"]["runbook_url"]
    parts = urlsplit(url)
    assert url.startswith(RUNBOOK_BASE + "#")
    assert parts.fragment == rule["alert"].lower()
    assert parts.fragment in _github_anchors(RUNBOOK.read_text())


def test_alertmanager_route_is_keyed_on_the_contract():
    [route] = yaml.safe_load(ALERTMANAGER_FRAGMENT.read_text())["routes"]
    assert route["matchers"] == [f'{LABEL_TRIGGER}=~".+"']
    # `cluster` (kept on every alert when the series carry it) keeps a central Alertmanager from
    # grouping two clusters' alerts into one payload; without it, it groups nothing apart.
    assert route["group_by"] == [
        "alertname",
        "cluster",
        *[label for label in RULE_LABELS if label not in STATIC_LABELS],
    ]
