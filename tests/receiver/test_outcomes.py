"""Every outcome and reason of the README's decision table owned by the receiver, through
POST /api/v1/alerts: the response, the audit row, the cluster (changed or not) and the Event."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest

from lab.receiver_harness import Harness, hours, minutes, template_images


class TargetLabels(TypedDict, total=False):
    """The alert labels naming what to roll back; a test leaves some out."""

    namespace: str
    deployment: str


def decide_one(harness: Harness, alert: dict[str, Any]) -> dict[str, Any]:
    [decision] = harness.post_alerts(alert)
    row = harness.audit_row(decision["id"])
    assert (row["outcome"], row["reason"]) == (decision["outcome"], decision["reason"])
    assert row["labels"] == alert["labels"]
    return decision


def assert_untouched(harness: Harness, namespace: str, name: str, image: str) -> None:
    """The Deployment kept its template, carries no last-action, and no rollback Event says
    otherwise (dry-run and failures announce themselves with their own reasons)."""
    deployment = harness.deployment(namespace, name)
    assert template_images(deployment) == [image]
    assert "auto-rollback/last-action" not in deployment["metadata"].get("annotations", {})
    reasons = [
        e["reason"] for e in harness.events(namespace) if e["involvedObject"]["name"] == name
    ]
    assert "AutoRollback" not in reasons


@pytest.fixture
def two_revisions(harness: Harness) -> list[str]:
    """web: revision 1 two hours old (healthy by age), revision 2 three minutes old."""
    return harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])


def test_resolved_alert_is_skipped(harness: Harness, two_revisions: list[str]) -> None:
    alert = harness.alert(status="resolved", namespace="shop", deployment="web")
    decision = decide_one(harness, alert)
    assert (decision["outcome"], decision["reason"]) == ("skipped", "resolved")
    assert_untouched(harness, "shop", "web", "web:2")


def test_unknown_trigger_is_skipped(harness: Harness, two_revisions: list[str]) -> None:
    decision = decide_one(harness, harness.alert(trigger="cpu", namespace="shop", deployment="web"))
    assert decision["reason"] == "unknown_trigger" and "'cpu'" in decision["detail"]
    assert_untouched(harness, "shop", "web", "web:2")


@pytest.mark.parametrize(
    ("labels", "missing"),
    [
        ({"deployment": "web"}, "namespace"),
        ({"namespace": "shop"}, "none of deployment, replicaset, pod"),
    ],
)
def test_missing_labels_are_named(
    harness: Harness, two_revisions: list[str], labels: TargetLabels, missing: str
) -> None:
    decision = decide_one(harness, harness.alert(**labels))
    assert decision["reason"] == "missing_labels" and missing in decision["detail"]


def test_alert_without_trigger_label_is_missing_labels(harness: Harness) -> None:
    decision = decide_one(harness, harness.alert(trigger=None, namespace="shop", deployment="web"))
    assert decision["reason"] == "missing_labels" and "rollback_trigger" in decision["detail"]


def test_denied_namespace_is_never_touched(harness: Harness) -> None:
    harness.deploy("dns", [("dns:1", hours(2)), ("dns:2", minutes(3))], namespace="kube-system")
    harness.sandbox.controls.clear_requests()
    decision = decide_one(harness, harness.alert(namespace="kube-system", deployment="dns"))
    assert decision["reason"] == "namespace_denied"
    assert harness.sandbox.controls.requests() == []  # not even a read
    assert_untouched(harness, "kube-system", "dns", "dns:2")


def test_namespace_outside_allow_list_is_denied(make_harness: Any) -> None:
    harness = make_harness(namespaces={"allow": ["payments"]})
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    decision = decide_one(harness, harness.alert(namespace="shop", deployment="web"))
    assert decision["reason"] == "namespace_denied" and "namespaces.allow" in decision["detail"]


def test_deployment_without_opt_in_is_not_opted_in(harness: Harness) -> None:
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))], annotations={})
    decision = decide_one(harness, harness.alert(namespace="shop", deployment="web"))
    assert decision["reason"] == "not_opted_in"
    assert_untouched(harness, "shop", "web", "web:2")


def test_namespace_label_opts_in_but_deployment_false_wins(harness: Harness) -> None:
    harness.sandbox.controls.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "shop", "labels": {"auto-rollback/enabled": "true"}},
        }
    )
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))], annotations={})
    harness.deploy(
        "api",
        [("api:1", hours(2)), ("api:2", minutes(3))],
        annotations={"auto-rollback/enabled": "false"},
    )
    opted = decide_one(harness, harness.alert(namespace="shop", deployment="web", replicaset=rs[1]))
    assert opted["outcome"] == "rolled_back"
    refused = decide_one(harness, harness.alert(namespace="shop", deployment="api"))
    assert refused["reason"] == "not_opted_in" and '"false"' in refused["detail"]
    assert_untouched(harness, "shop", "api", "api:2")


def test_missing_deployment_is_deployment_not_found(harness: Harness) -> None:
    decision = decide_one(harness, harness.alert(namespace="shop", deployment="ghost"))
    assert decision["reason"] == "deployment_not_found"


def test_paused_deployment_is_skipped(harness: Harness, two_revisions: list[str]) -> None:
    harness.official().patch_namespaced_deployment("web", "shop", {"spec": {"paused": True}})
    decision = decide_one(harness, harness.alert(namespace="shop", deployment="web"))
    assert decision["reason"] == "paused"
    assert_untouched(harness, "shop", "web", "web:2")


def test_alert_for_old_replicaset_is_not_current_revision(
    harness: Harness, two_revisions: list[str]
) -> None:
    alert = harness.alert(namespace="shop", deployment="web", replicaset=two_revisions[0])
    decision = decide_one(harness, alert)
    assert decision["reason"] == "not_current_revision"
    assert "revision 1" in decision["detail"] and "current is revision 2" in decision["detail"]
    assert_untouched(harness, "shop", "web", "web:2")


def test_pod_label_resolves_deployment_through_owner_references(
    harness: Harness, two_revisions: list[str]
) -> None:
    pods = harness.read("GET", "/api/v1/namespaces/shop/pods")["items"]
    pod = next(
        p["metadata"]["name"]
        for p in pods
        if p["metadata"]["ownerReferences"][0]["name"] == two_revisions[1]
    )
    decision = decide_one(harness, harness.alert(namespace="shop", pod=pod))
    assert decision["outcome"] == "rolled_back"
    assert decision["deployment"] == "web" and decision["from_replicaset"] == two_revisions[1]


def test_replicaset_only_resolves_deployment(harness: Harness, two_revisions: list[str]) -> None:
    decision = decide_one(harness, harness.alert(namespace="shop", replicaset=two_revisions[1]))
    assert decision["outcome"] == "rolled_back" and decision["deployment"] == "web"


def test_old_rollout_is_no_recent_rollout(harness: Harness) -> None:
    harness.deploy("web", [("web:1", hours(5)), ("web:2", hours(2))])
    decision = decide_one(harness, harness.alert(namespace="shop", deployment="web"))
    assert decision["reason"] == "no_recent_rollout"
    assert_untouched(harness, "shop", "web", "web:2")


def test_per_deployment_window_override(harness: Harness) -> None:
    harness.deploy(
        "web",
        [("web:1", hours(5)), ("web:2", hours(2))],
        annotations={"auto-rollback/enabled": "true", "auto-rollback/recent-rollout-window": "3h"},
    )
    decision = decide_one(harness, harness.alert(namespace="shop", deployment="web"))
    assert decision["outcome"] == "rolled_back"


def test_alert_older_than_rollout_is_alert_predates_rollout(
    harness: Harness, two_revisions: list[str]
) -> None:
    alert = harness.alert(namespace="shop", deployment="web", started_ago=minutes(10))
    decision = decide_one(harness, alert)
    assert decision["reason"] == "alert_predates_rollout"


def test_no_revision_with_evidence_is_no_healthy_revision(harness: Harness) -> None:
    # Revision 1 lived only two minutes before revision 2: nothing proves it healthy.
    harness.deploy("web", [("web:1", minutes(6)), ("web:2", minutes(4))])
    decision = decide_one(harness, harness.alert(namespace="shop", deployment="web"))
    assert decision["reason"] == "no_healthy_revision"
    assert "r1 unproven" in decision["detail"]
    assert "AutoRollbackNoHealthyRevision" in harness.event_reasons("shop")
    assert_untouched(harness, "shop", "web", "web:2")


def test_second_bad_rollout_within_cooldown_is_cooldown(harness: Harness) -> None:
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    first = decide_one(harness, harness.alert(namespace="shop", deployment="web", replicaset=rs[1]))
    assert first["outcome"] == "rolled_back"
    # A human rolls out a new image right after; it fails too, inside the hour of cooldown.
    harness.deploy("web", [("web:3", minutes(0))])
    decision = decide_one(
        harness, harness.alert(namespace="shop", deployment="web", started_ago=minutes(0))
    )
    assert decision["reason"] == "cooldown"
    assert template_images(harness.deployment("shop", "web")) == ["web:3"]


def test_dry_run_records_the_rollback_and_changes_nothing(make_harness: Any) -> None:
    harness = make_harness(dry_run=True)
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    decision = decide_one(harness, harness.alert(namespace="shop", deployment="web"))
    assert decision["outcome"] == "dry_run" and decision["dry_run"] is True
    assert (decision["from_revision"], decision["to_revision"]) == (2, 1)
    assert decision["to_replicaset"] == rs[0] and "would roll back" in decision["detail"]
    assert_untouched(harness, "shop", "web", "web:2")
    assert "auto-rollback/bad-revision" not in (
        harness.replicasets("shop", "web")[1]["metadata"].get("annotations", {})
    )
    assert "AutoRollbackDryRun" in harness.event_reasons("shop")
    again = decide_one(harness, harness.alert(namespace="shop", deployment="web"))
    assert again["reason"] == "duplicate" and decision["id"] in again["detail"]


def test_forbidden_write_is_failed_forbidden(harness: Harness, two_revisions: list[str]) -> None:
    harness.sandbox.controls.fault(method="PUT", path="/deployments/web$", status=403)
    decision = decide_one(harness, harness.alert(namespace="shop", deployment="web"))
    assert (decision["outcome"], decision["reason"]) == ("failed", "forbidden")
    assert "AutoRollbackFailed" in harness.event_reasons("shop")
    assert_untouched(harness, "shop", "web", "web:2")


def test_every_response_lists_one_decision_per_alert(
    harness: Harness, two_revisions: list[str]
) -> None:
    alerts = [
        harness.alert(status="resolved", namespace="shop", deployment="web"),
        harness.alert(trigger="cpu", namespace="shop", deployment="web"),
        harness.alert(namespace="shop", deployment="web", replicaset=two_revisions[1]),
    ]
    decisions = harness.post_alerts(*alerts)
    assert [d["reason"] or d["outcome"] for d in decisions] == [
        "resolved",
        "unknown_trigger",
        "rolled_back",
    ]


def test_namespace_opt_out_holds_without_require_opt_in(make_harness: Any) -> None:
    # require_opt_in: false acts on unannotated Deployments, except where the namespace says
    # "false"; a Deployment's own "true" is the most specific word and is honoured.
    harness = make_harness(require_opt_in=False)
    harness.sandbox.controls.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "legacy", "labels": {"auto-rollback/enabled": "false"}},
        }
    )
    harness.deploy(
        "web", [("web:1", hours(2)), ("web:2", minutes(3))], namespace="legacy", annotations={}
    )
    rs = harness.deploy("api", [("api:1", hours(2)), ("api:2", minutes(3))], namespace="legacy")
    refused = decide_one(harness, harness.alert(namespace="legacy", deployment="web"))
    assert refused["reason"] == "not_opted_in" and "namespace legacy" in refused["detail"]
    assert_untouched(harness, "legacy", "web", "web:2")
    opted = decide_one(
        harness, harness.alert(namespace="legacy", deployment="api", replicaset=rs[1])
    )
    assert opted["outcome"] == "rolled_back"
