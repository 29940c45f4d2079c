"""The rollback itself: the right target, kubectl's body, the marks and the Events."""

from __future__ import annotations

import json
import subprocess

from lab.receiver_harness import REV, Harness, hours, minutes, template_images
from tests.binaries import require_binary


def test_rolls_back_to_last_healthy_revision_not_the_previous_one(harness: Harness) -> None:
    # Revision 1 ran two hours; revision 2 only three minutes before 3 came: 2 is unproven.
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(8)), ("web:3", minutes(5))])
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[2])
    )
    assert decision["outcome"] == "rolled_back", decision
    assert (decision["from_revision"], decision["to_revision"]) == (3, 1)
    assert decision["to_replicaset"] == rs[0]
    deployment = harness.deployment("shop", "web")
    assert template_images(deployment) == ["web:1"]
    # The re-adopted ReplicaSet of revision 1 is now revision 4 (Deployment controller).
    assert deployment["metadata"]["annotations"][REV] == "4"
    assert "revision 2" in decision["detail"] and "unproven" in decision["detail"]


def test_rolled_back_revision_is_marked_bad(harness: Harness) -> None:
    rs = harness.deploy("web", [("web:1", hours(3)), ("web:2", hours(2)), ("web:3", minutes(5))])
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[2])
    )
    assert decision["outcome"] == "rolled_back" and decision["to_revision"] == 2
    marked = {r["metadata"]["name"]: r for r in harness.replicasets("shop", "web")}[rs[2]]
    mark = json.loads(marked["metadata"]["annotations"]["auto-rollback/bad-revision"])
    assert mark["audit_id"] == decision["id"] and mark["trigger"] == "restart_rate"
    assert mark["alertname"] == "RollbackRestartRate"


def test_bad_marked_revision_is_never_the_target(harness: Harness) -> None:
    # Revision 2 ran an hour (healthy by age) but carries a bad mark: the target is 1.
    rs = harness.deploy("web", [("web:1", hours(3)), ("web:2", hours(2)), ("web:3", minutes(5))])
    harness.official().patch_namespaced_replica_set(
        rs[1], "shop", {"metadata": {"annotations": {"auto-rollback/bad-revision": "{}"}}}
    )
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[2])
    )
    assert decision["outcome"] == "rolled_back", decision
    assert decision["to_revision"] == 1 and decision["to_replicaset"] == rs[0]
    assert "r2 bad" in decision["detail"]


def test_rollback_writes_last_action_change_cause_and_event(harness: Harness) -> None:
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(5))])
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    annotations = harness.deployment("shop", "web")["metadata"]["annotations"]
    action = json.loads(annotations["auto-rollback/last-action"])
    assert action["from_revision"] == 2 and action["to_revision"] == 1
    assert action["audit_id"] == decision["id"] and action["alertname"] == "RollbackRestartRate"
    assert action["trigger"] == "restart_rate" and action["to_replicaset"] == rs[0]
    assert decision["id"] in annotations["kubernetes.io/change-cause"]
    events = [e for e in harness.events("shop") if e["reason"] == "AutoRollback"]
    assert len(events) == 1
    assert events[0]["involvedObject"]["name"] == "web"
    assert events[0]["involvedObject"]["kind"] == "Deployment"
    assert decision["id"] in events[0]["message"]
    row = harness.audit_row(decision["id"])
    assert row["outcome"] == "rolled_back" and row["from_replicaset"] == rs[1]


def _kubectl(harness: Harness, *args: str) -> str:
    kubectl = require_binary("kubectl")
    result = subprocess.run(
        [kubectl, "--kubeconfig", str(harness.sandbox.kubeconfig), "--request-timeout=20s", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_parity_with_kubectl_rollout_undo(harness: Harness) -> None:
    """Our rollback to 2 leaves spec and annotations as `kubectl rollout undo --to-revision=2`
    leaves an identical twin, except the annotations this service adds (auto-rollback/*,
    kubernetes.io/change-cause)."""
    for namespace in ("ours", "kubectl"):
        harness.deploy(
            "web",
            [("web:1", hours(3)), ("web:2", hours(2)), ("web:3", minutes(5))],
            namespace=namespace,
        )
    ours = harness.replicasets("ours", "web")
    [decision] = harness.post_alerts(
        harness.alert(namespace="ours", deployment="web", replicaset=ours[2]["metadata"]["name"])
    )
    assert decision["outcome"] == "rolled_back" and decision["to_revision"] == 2
    _kubectl(harness, "-n", "kubectl", "rollout", "undo", "deployment/web", "--to-revision=2")

    def comparable(namespace: str) -> tuple[dict, dict]:
        deployment = harness.deployment(namespace, "web")
        annotations = {
            k: v
            for k, v in deployment["metadata"]["annotations"].items()
            if not k.startswith("auto-rollback/") and k != "kubernetes.io/change-cause"
        }
        return deployment["spec"], annotations

    assert comparable("ours") == comparable("kubectl")
    assert harness.deployment("ours", "web")["metadata"]["annotations"][REV] == "4"


def test_revision_a_human_re_adopted_with_kubectl_is_judged_from_its_re_adoption(
    harness: Harness,
) -> None:
    # web:1 (3 h) then web:2 (2 h); a human runs `kubectl rollout undo` now, re-adopting
    # web:1's ReplicaSet as revision 3, and that fails. Its ReplicaSet is 3 h old, but it became
    # current just now (Progressing lastUpdateTime), so the rollout is recent; and web:2 ran
    # two hours until the re-adoption replaced it, so it is the healthy target.
    rs = harness.deploy("web", [("web:1", hours(3)), ("web:2", hours(2))])
    _kubectl(harness, "-n", "shop", "rollout", "undo", "deployment/web")
    current = harness.replicasets("shop", "web")[-1]
    assert current["metadata"]["name"] == rs[0]
    assert current["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[0], started_ago=minutes(0))
    )
    assert decision["outcome"] == "rolled_back", decision
    assert decision["to_replicaset"] == rs[1]
    assert template_images(harness.deployment("shop", "web")) == ["web:2"]
