"""The policy rows that keep a payload from reaching past the policy: invalid_labels,
wrong_cluster and alert_from_future, through POST /api/v1/alerts on the sandbox. None of them
makes a single API request, and nothing is written (no rollback, no mark, no Event)."""

from __future__ import annotations

from typing import Any

import pytest

from lab.receiver_harness import Harness, hours, minutes, template_images

HOSTILE_NAMES = [
    {"namespace": "shop/../kube-system", "deployment": "dns"},
    {"namespace": "./kube-system", "deployment": "dns"},
    {"namespace": "kube-system/..", "deployment": "dns"},
    {"namespace": "shop", "deployment": "../../../api/v1/namespaces/kube-system/pods/x"},
    {"namespace": "shop", "deployment": "web%2F..%2Fdns"},
    {"namespace": "shop", "deployment": "web", "replicaset": "web-1/../../dns-2"},
    {"namespace": "shop", "pod": "web-1-abcde/.."},
    {"namespace": "Shop", "deployment": "web"},
    {"namespace": "shop", "deployment": "web.."},
    {"namespace": "x" * 64, "deployment": "web"},
]


def _untouched(harness: Harness) -> None:
    for namespace, name, image in (("kube-system", "dns", "dns:2"), ("shop", "web", "web:2")):
        deployment = harness.deployment(namespace, name)
        assert template_images(deployment) == [image]
        assert "auto-rollback/last-action" not in deployment["metadata"].get("annotations", {})
        assert not [r for r in harness.event_reasons(namespace) if r.startswith("AutoRollback")]


@pytest.fixture
def two_namespaces(harness: Harness) -> Harness:
    """An opted-in Deployment with a bad new revision in kube-system and in shop."""
    harness.deploy("dns", [("dns:1", hours(2)), ("dns:2", minutes(3))], namespace="kube-system")
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    harness.sandbox.controls.clear_requests()
    return harness


@pytest.mark.parametrize("labels", HOSTILE_NAMES, ids=lambda labels: "/".join(labels.values()))
def test_a_label_that_is_not_a_kubernetes_name_is_invalid_labels_and_never_requested(
    two_namespaces: Harness, labels: dict[str, str]
) -> None:
    harness = two_namespaces
    [decision] = harness.post_alerts(harness.alert(**labels))  # type: ignore[arg-type]
    assert (decision["outcome"], decision["reason"]) == ("skipped", "invalid_labels")
    bad = next(k for k, v in labels.items() if f"{k}={v!r}" in decision["detail"])
    assert bad in labels
    assert harness.audit_row(decision["id"])["labels"] == {**decision["labels"]}
    assert harness.sandbox.controls.requests() == []  # not even a read
    _untouched(harness)


def test_an_alert_for_another_cluster_is_wrong_cluster(make_harness: Any) -> None:
    harness = make_harness(cluster={"name": "prod-eu"})
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    harness.sandbox.controls.clear_requests()
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", cluster="prod-us")
    )
    assert (decision["outcome"], decision["reason"]) == ("skipped", "wrong_cluster")
    assert "'prod-us'" in decision["detail"] and "'prod-eu'" in decision["detail"]
    assert harness.sandbox.controls.requests() == []
    assert template_images(harness.deployment("shop", "web")) == ["web:2"]


def test_an_alert_for_this_cluster_or_without_the_label_is_acted_on(make_harness: Any) -> None:
    harness = make_harness(cluster={"name": "prod-eu"})
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    harness.deploy("api", [("api:1", hours(2)), ("api:2", minutes(3))])
    mine, unlabelled = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", cluster="prod-eu"),
        harness.alert(namespace="shop", deployment="api"),
    )
    assert mine["outcome"] == unlabelled["outcome"] == "rolled_back"


def test_with_the_label_required_an_alert_without_it_is_wrong_cluster(make_harness: Any) -> None:
    harness = make_harness(
        cluster={"name": "prod-eu", "label": "k8s_cluster", "require_label": True}
    )
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    harness.sandbox.controls.clear_requests()
    missing, other_label = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web"),
        harness.alert(namespace="shop", deployment="web", cluster="prod-eu"),
    )
    assert missing["reason"] == other_label["reason"] == "wrong_cluster"
    assert "k8s_cluster is missing" in missing["detail"]
    assert harness.sandbox.controls.requests() == []
    [acted] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", k8s_cluster="prod-eu")
    )
    assert acted["outcome"] == "rolled_back"


def test_an_alert_from_beyond_the_clock_skew_is_alert_from_future_and_writes_no_mark(
    make_harness: Any,
) -> None:
    harness = make_harness(max_clock_skew="2m")
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    harness.sandbox.controls.clear_requests()
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", started_ago=-hours(24 * 365 * 50))
    )
    assert (decision["outcome"], decision["reason"]) == ("skipped", "alert_from_future")
    assert "max_clock_skew 120s" in decision["detail"]
    assert harness.sandbox.controls.requests() == []
    for rs in harness.replicasets("shop", "web"):
        assert "auto-rollback/alerted-at" not in rs["metadata"].get("annotations", {})


def test_an_alert_within_the_clock_skew_is_decided_as_usual(make_harness: Any) -> None:
    harness = make_harness(max_clock_skew="2m")
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", started_ago=-minutes(1))
    )
    assert decision["outcome"] == "rolled_back"
