"""The sandbox serves every series the rules read, with the labels the rules join on.

The rules are written against kube-state-metrics v2; the sandbox imitates it. If either side
renames a metric or a join label, the pipeline would silently never fire: this catches it here,
in milliseconds, without a Prometheus.
"""

from __future__ import annotations

import re
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from rules.extract import extract_groups
from sandbox.testing import SandboxHandle
from tests.rules.support import MANIFEST

# The labels each input series must carry for the joins in rules/rollback-rules.yaml.
JOIN_LABELS = {
    "kube_pod_owner": {"namespace", "pod", "owner_kind", "owner_name", "owner_is_controller"},
    "kube_replicaset_owner": {
        "namespace",
        "replicaset",
        "owner_kind",
        "owner_name",
        "owner_is_controller",
    },
    "kube_replicaset_created": {"namespace", "replicaset"},
    "kube_replicaset_spec_replicas": {"namespace", "replicaset"},
    "kube_pod_created": {"namespace", "pod"},
    "kube_pod_container_status_restarts_total": {"namespace", "pod", "container"},
    "kube_pod_container_status_last_terminated_reason": {"namespace", "pod", "container", "reason"},
    "http_request_duration_seconds_bucket": {"namespace", "pod", "le"},
    "kube_deployment_spec_replicas": {"namespace", "deployment"},
}
# Read by the rules but not served by the sandbox, which runs no init containers: the rules take
# them with `or` beside the app containers' series, so their absence changes nothing else.
NOT_IN_SANDBOX = {
    "kube_pod_init_container_status_restarts_total",
    "kube_pod_init_container_status_last_terminated_reason",
}

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {sandbox.auto-rollback/fault: oomkilled}
    spec:
      containers: [{name: app, image: "web:v1"}]
"""


def _input_metrics() -> set[str]:
    """Every raw (non-recorded) metric name the manifest's expressions read."""
    names: set[str] = set()
    for group in extract_groups(MANIFEST)["groups"]:
        for rule in group["rules"]:
            names |= set(re.findall(r"\b(?:kube|http)_[a-z_]+\b", rule["expr"]))
    return names


def _series_labels(text: str) -> dict[str, list[set[str]]]:
    found: dict[str, list[set[str]]] = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}\s", line)
        if match:
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', match.group(2)))
            found.setdefault(match.group(1), []).append(labels)
    return found


def test_the_rules_read_exactly_the_inputs_this_test_knows():
    assert _input_metrics() == set(JOIN_LABELS) | NOT_IN_SANDBOX


@pytest.mark.parametrize("metric", sorted(JOIN_LABELS))
def test_sandbox_serves_the_series_with_its_join_labels(sandbox: SandboxHandle, metric: str):
    # Two minutes old, so the OOMKilled pod has restarted and reports a last-terminated reason.
    sandbox.controls.apply(DEPLOYMENT, as_of=datetime.now(UTC) - timedelta(minutes=2))
    with urllib.request.urlopen(sandbox.url + "/metrics", timeout=10) as response:
        series = _series_labels(response.read().decode())
    assert metric in series, f"sandbox /metrics has no {metric}"
    assert any(JOIN_LABELS[metric] <= labels for labels in series[metric]), series[metric][:3]
