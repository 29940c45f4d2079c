"""Path-traversing, encoded and malformed names in every workload label never reach the API:
the sandbox's request record shows no request at all, kube-system stays untouched, and the
audit keeps the raw labels and names the refused value. Through alerts and through replays."""

from __future__ import annotations

import json
import random
import string

import pytest

from lab.receiver_harness import Harness, hours, minutes, template_images
from tests.oncall.support import ALICE, OnCall

HOSTILE = [
    "default/../kube-system",
    "./kube-public",
    "%2e%2e",
    "..%2fkube-system",
    "a/b",
    "Kube-System",
    "a" * 254,
    "kube-systém",
    "\uff4b\uff55\uff42\uff45-system",  # fullwidth letters, which NFKC folds to kube
    "kube-system\n",
    "..",
]
LABELS = ["namespace", "deployment", "replicaset", "pod"]


def labels_with(label: str, value: str) -> dict[str, str]:
    """shop/web's labels with one workload label replaced by `value`."""
    labels = {"namespace": "shop", "deployment": "web"}
    labels[label] = value
    return labels


@pytest.fixture
def clusters(harness: Harness) -> Harness:
    """Opted-in Deployments with a bad new revision, in kube-system, kube-public and shop."""
    for namespace, name in (("kube-system", "dns"), ("kube-public", "info"), ("shop", "web")):
        harness.deploy(
            name, [(f"{name}:1", hours(2)), (f"{name}:2", minutes(3))], namespace=namespace
        )
    harness.sandbox.controls.clear_requests()
    return harness


def assert_untouched(harness: Harness) -> None:
    # Nothing was requested (read or write) by the service, so nothing can have changed.
    assert harness.sandbox.controls.requests() == []
    for namespace, name in (("kube-system", "dns"), ("kube-public", "info"), ("shop", "web")):
        deployment = harness.deployment(namespace, name)
        assert template_images(deployment) == [f"{name}:2"]
        assert "auto-rollback/last-action" not in deployment["metadata"].get("annotations", {})
        assert not [r for r in harness.event_reasons(namespace) if r.startswith("AutoRollback")]


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: ascii(v)[:30])
@pytest.mark.parametrize("label", LABELS)
def test_hostile_name_in_a_workload_label_never_reaches_the_api(
    clusters: Harness, label: str, value: str
) -> None:
    alert = clusters.alert(**labels_with(label, value))  # type: ignore[arg-type]
    [decision] = clusters.post_alerts(alert)
    assert (decision["outcome"], decision["reason"]) == ("skipped", "invalid_labels")
    assert f"label {label}={value!r}" in decision["detail"]
    row = clusters.audit_row(decision["id"])
    assert row["labels"][label] == value  # the raw value, exactly as sent
    assert f"{label}={value!r}" in row["detail"]  # and which value was refused
    assert_untouched(clusters)


def test_hostile_names_in_a_replay_never_reach_the_api(oncall: OnCall) -> None:
    h = oncall.h
    h.deploy("dns", [("dns:1", hours(2)), ("dns:2", minutes(3))], namespace="kube-system")
    h.sandbox.controls.clear_requests()
    alerts = [
        h.alert(**labels_with(label, "default/../kube-system"))  # type: ignore[arg-type]
        for label in LABELS
    ]
    status, body = oncall.replay(
        {"payload": h.payload(*alerts), "reason": "hostile", "dry_run": False}, token=ALICE
    )
    assert status == 200, body
    assert [d["reason"] for d in body["decisions"]] == ["invalid_labels"] * len(LABELS)
    assert h.sandbox.controls.requests() == []
    assert template_images(h.deployment("kube-system", "dns")) == ["dns:2"]
    stored = h.service.audit.payload(body["payload_id"])
    assert (
        stored is not None
        and "default/../kube-system" in json.loads(stored.body)["alerts"][0]["labels"].values()
    )


@pytest.mark.parametrize("label", ["namespace", "deployment"])
def test_a_workload_label_longer_than_any_name_is_decided_on_either_store(
    on_each_store: Harness, label: str
) -> None:
    """9,000 random letters: PostgreSQL keeps no index entry over about 2.7 kB, and the audit
    indexes its decisions by namespace and Deployment. The value is no name, so those columns
    stay blank; the labels and the detail keep it as sent. A 5xx would be retried forever."""
    h = on_each_store
    h.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    h.sandbox.controls.clear_requests()
    letters = random.Random(label).choices(string.ascii_letters, k=9_000)
    value = "".join(letters)
    [decision] = h.post_alerts(h.alert(**labels_with(label, value)))  # type: ignore[arg-type]
    assert (decision["outcome"], decision["reason"]) == ("skipped", "invalid_labels")
    row = h.audit_row(decision["id"])
    assert row["labels"][label] == value and value in row["detail"]
    assert row[label] == ""
    assert h.sandbox.controls.requests() == []
    assert template_images(h.deployment("shop", "web")) == ["web:2"]
