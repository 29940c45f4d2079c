"""On the real control plane: an alert for a pod of a bad revision rolls the Deployment back
exactly as `kubectl rollout undo` rolls back a twin, with the bad mark and the Event; a
redelivered alert changes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from lab.controlplane import ControlPlane
from lab.receiver_harness import REV
from tests.controlplane.support import (
    apply,
    deployment_manifest,
    get_json,
    kubectl,
    pods_of,
    receiver,
    replicasets,
    rollout_status,
    set_template,
    settled,
    wait_until,
)

pytestmark = pytest.mark.controlplane


@pytest.fixture
def twin(controlplane: ControlPlane, namespace: str) -> Iterator[str]:
    name = namespace + "-twin"
    kubectl(controlplane, "create", "namespace", name)
    yield name
    kubectl(controlplane, "delete", "namespace", name, "--wait=false", check=False)


def crashing_second_revision(plane: ControlPlane, namespace: str) -> list[dict]:
    """web:1 rolled out and healthy for longer than min_healthy_seconds, then web:2 crash-loops."""
    apply(plane, deployment_manifest("web", namespace, "web:1", replicas=2))
    rollout_status(plane, namespace, "web")
    time.sleep(4)  # the receiver's min_healthy_seconds is 3: revision 1 is healthy by age
    set_template(plane, namespace, "web", "web:2", "crashloop")

    def crashing() -> list[dict] | None:
        sets = replicasets(plane, namespace, "web")
        if len(sets) < 2:
            return None
        pods = pods_of(plane, namespace, sets[-1]["metadata"]["name"])
        waiting = [
            p
            for p in pods
            for c in p.get("status", {}).get("containerStatuses") or []
            if (c.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
        ]
        return sets if waiting else None

    return wait_until("revision 2 to crash-loop", crashing)


def comparable(plane: ControlPlane, namespace: str) -> tuple[dict, dict]:
    deployment = wait_until(
        f"{namespace}/web to be observed", lambda: settled(plane, namespace, "web")
    )
    # last-applied-configuration names the namespace: the twins differ only there.
    annotations = {
        k: v.replace(namespace, "<namespace>")
        for k, v in deployment["metadata"]["annotations"].items()
        if not k.startswith("auto-rollback/") and k != "kubernetes.io/change-cause"
    }
    return deployment["spec"], annotations


def test_alert_for_a_pod_of_the_bad_revision_rolls_back_as_kubectl_undo_does(
    controlplane: ControlPlane, namespace: str, twin: str, tmp_path: Path
) -> None:
    ours = crashing_second_revision(controlplane, namespace)
    crashing_second_revision(controlplane, twin)
    bad = ours[-1]["metadata"]["name"]
    pod = pods_of(controlplane, namespace, bad)[0]["metadata"]["name"]
    harness = receiver(controlplane, tmp_path)
    alert = harness.alert(
        namespace=namespace, deployment="web", pod=pod, started_ago=timedelta(seconds=0)
    )

    [decision] = harness.post_alerts(alert)
    assert decision["outcome"] == "rolled_back", decision
    assert (decision["from_revision"], decision["to_revision"]) == (2, 1)
    assert decision["from_replicaset"] == bad
    kubectl(controlplane, "-n", twin, "rollout", "undo", "deployment/web")

    # The real controller re-adopts revision 1's ReplicaSet as revision 3 in both.
    assert comparable(controlplane, namespace) == comparable(controlplane, twin)
    rollout_status(controlplane, namespace, "web")
    deployment = get_json(controlplane, "-n", namespace, "deployment", "web")
    assert deployment["metadata"]["annotations"][REV] == "3"
    sets = {rs["metadata"]["name"]: rs for rs in replicasets(controlplane, namespace, "web")}
    assert sets[ours[0]["metadata"]["name"]]["metadata"]["annotations"][REV] == "3"
    assert sets[bad]["spec"]["replicas"] == 0

    mark = json.loads(sets[bad]["metadata"]["annotations"]["auto-rollback/bad-revision"])
    assert mark["audit_id"] == decision["id"] and mark["trigger"] == "restart_rate"
    events = [e for e in harness.events(namespace) if e["reason"] == "AutoRollback"]
    assert len(events) == 1 and decision["id"] in events[0]["message"]
    assert events[0]["involvedObject"]["kind"] == "Deployment"

    # Redelivery (Alertmanager retry or HA peer): a decision, and no change at all.
    before = get_json(controlplane, "-n", namespace, "deployment", "web")
    marks_before = {n: rs["metadata"].get("annotations") for n, rs in sets.items()}
    [again] = harness.post_alerts(alert)
    # The pod is gone with its ReplicaSet scaled to zero, or (still terminating) not current.
    assert again["outcome"] == "skipped", again
    assert again["reason"] in {"deployment_not_found", "not_current_revision"}, again
    after = get_json(controlplane, "-n", namespace, "deployment", "web")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]
    marks_after = {
        rs["metadata"]["name"]: rs["metadata"].get("annotations")
        for rs in replicasets(controlplane, namespace, "web")
    }
    assert marks_after == marks_before
    assert [e["reason"] for e in harness.events(namespace)].count("AutoRollback") == 1


def test_an_alert_name_of_any_length_cannot_stop_the_rollback(
    controlplane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """A label value has no length limit, and a Deployment's annotations together at most
    256 KiB: the name the rollback's annotations copy (change-cause, last-action, bad mark) is
    cut, so the apiserver takes the write; the audit keeps the name as sent."""
    apply(controlplane, deployment_manifest("web", namespace, "web:1", replicas=1))
    rollout_status(controlplane, namespace, "web")
    time.sleep(4)  # min_healthy_seconds 3: revision 1 is healthy by age
    set_template(controlplane, namespace, "web", "web:2", "crashloop")
    sets = wait_until(
        "revision 2",
        lambda: s if len(s := replicasets(controlplane, namespace, "web")) > 1 else None,
    )
    bad = sets[-1]["metadata"]["name"]
    harness = receiver(controlplane, tmp_path)
    alert = harness.alert(
        namespace=namespace, deployment="web", replicaset=bad, started_ago=timedelta(0)
    )
    name = "RolloutRestartRateHigh" + "x" * 150_000
    alert["labels"]["alertname"] = name
    [decision] = harness.post_alerts(alert)
    assert decision["outcome"] == "rolled_back", decision["detail"][:300]
    assert decision["alertname"] == name  # the audit: as sent
    annotations = get_json(controlplane, "-n", namespace, "deployment", "web")["metadata"][
        "annotations"
    ]
    cut = json.loads(annotations["auto-rollback/last-action"])["alertname"]
    assert len(cut) == 253 and name.startswith(cut[:-1]) and cut.endswith("\u2026")
    marked = {rs["metadata"]["name"]: rs for rs in replicasets(controlplane, namespace, "web")}
    mark = json.loads(marked[bad]["metadata"]["annotations"]["auto-rollback/bad-revision"])
    assert mark["alertname"] == cut
