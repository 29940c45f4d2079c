"""The sandbox Deployment controller, driven through Store writes (no HTTP).

Expected values come from kubernetes/kubernetes pkg/controller/deployment: sync.go
(getNewReplicaSet, cleanupDeployment, calculateStatus), progress.go (syncRolloutStatus),
util/deployment_util.go (SetNewReplicaSetAnnotations, condition reasons and messages).
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from sandbox.deployment_util import compute_hash, equal_ignore_hash
from sandbox.store import Store, format_time
from tests.sandbox.support import Clock, create_deployment

REVISION = "deployment.kubernetes.io/revision"
HISTORY = "deployment.kubernetes.io/revision-history"

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  annotations: {kubernetes.io/change-cause: "v1"}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "shop/web:1"}]
"""


def create(store: Store, text: str = DEPLOYMENT, **spec: Any) -> dict[str, Any]:
    return create_deployment(store, text, **spec)


def change(store: Store, *, image: str | None = None, **spec: Any) -> dict[str, Any]:
    """A user's write to the Deployment (what kubectl set image / scale / pause send)."""
    obj = store.get("deployments", "shop", "web")
    if image is not None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = image
        obj["metadata"]["annotations"]["kubernetes.io/change-cause"] = image
    obj["spec"].update(spec)
    return store.update("deployments", obj)


def deployment(store: Store) -> dict[str, Any]:
    return store.get("deployments", "shop", "web")


def replicasets(store: Store) -> dict[int, dict[str, Any]]:
    """ReplicaSets by revision number."""
    items, _ = store.list("replicasets", "shop")
    return {int(rs["metadata"]["annotations"][REVISION]): rs for rs in items}


def pods_of(store: Store, rs: dict[str, Any]) -> list[dict[str, Any]]:
    items, _ = store.list("pods", "shop")
    uid = rs["metadata"]["uid"]
    return [p for p in items if p["metadata"]["ownerReferences"][0]["uid"] == uid]


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def image_of(rs: dict[str, Any]) -> str:
    return str(rs["spec"]["template"]["spec"]["containers"][0]["image"])


def test_new_deployment_gets_hash_named_replicaset_at_revision_1_with_ready_pods(
    store: Store,
) -> None:
    created = create(store)
    (rs,) = replicasets(store).values()
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert pod_hash == compute_hash(created["spec"]["template"], None)
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == pod_hash
    ref = rs["metadata"]["ownerReferences"][0]
    assert ref == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "uid": created["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    annotations = rs["metadata"]["annotations"]
    assert annotations[REVISION] == "1"
    # desired = spec.replicas, max = replicas + maxSurge (25% of 3 rounded up)
    assert annotations["deployment.kubernetes.io/desired-replicas"] == "3"
    assert annotations["deployment.kubernetes.io/max-replicas"] == "4"
    assert annotations["kubernetes.io/change-cause"] == "v1"
    pods = pods_of(store, rs)
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"web-{pod_hash}-")
        assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["containerStatuses"][0]["ready"] is True
    assert rs["status"] == {
        "replicas": 3,
        "fullyLabeledReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "observedGeneration": 1,
    }


def test_settled_deployment_status_is_what_rollout_status_calls_successfully_rolled_out(
    store: Store,
) -> None:
    create(store)
    d = deployment(store)
    assert d["metadata"]["annotations"][REVISION] == "1"
    status = d["status"]
    # kubectl rollout status (polymorphichelpers/rollout_status.go) succeeds when
    # observedGeneration >= generation and updated == replicas == available == spec.replicas.
    assert status["observedGeneration"] == d["metadata"]["generation"]
    assert status["replicas"] == status["updatedReplicas"] == status["availableReplicas"] == 3
    assert status["readyReplicas"] == 3
    assert "unavailableReplicas" not in status  # zero is omitted (omitempty)
    rs_name = next(iter(replicasets(store).values()))["metadata"]["name"]
    available = condition(d, "Available")
    assert (available["status"], available["reason"], available["message"]) == (
        "True",
        "MinimumReplicasAvailable",
        "Deployment has minimum availability.",
    )
    progressing = condition(d, "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "True",
        "NewReplicaSetAvailable",
        f'ReplicaSet "{rs_name}" has successfully progressed.',
    )


def test_set_image_twice_then_undo_readopts_revision_2_as_revision_4(store: Store) -> None:
    create(store)
    change(store, image="shop/web:2")
    change(store, image="shop/web:3")
    by_revision = replicasets(store)
    assert sorted(by_revision) == [1, 2, 3]
    assert [image_of(by_revision[r]) for r in (1, 2, 3)] == [
        "shop/web:1",
        "shop/web:2",
        "shop/web:3",
    ]
    assert [by_revision[r]["spec"]["replicas"] for r in (1, 2, 3)] == [0, 0, 3]
    assert deployment(store)["metadata"]["annotations"][REVISION] == "3"

    # kubectl rollout undo: the Deployment gets revision 2's template back.
    readopted_name = by_revision[2]["metadata"]["name"]
    change(store, image="shop/web:2")
    by_revision = replicasets(store)
    assert sorted(by_revision) == [1, 3, 4]
    assert by_revision[4]["metadata"]["name"] == readopted_name
    assert by_revision[4]["metadata"]["annotations"][HISTORY] == "2"
    assert by_revision[4]["spec"]["replicas"] == 3
    assert by_revision[3]["spec"]["replicas"] == 0
    d = deployment(store)
    assert d["metadata"]["annotations"][REVISION] == "4"
    assert condition(d, "Progressing")["message"] == (
        f'ReplicaSet "{readopted_name}" has successfully progressed.'
    )

    # rollout undo --to-revision=1, then back to 2's template once more: history grows.
    change(store, image="shop/web:1")
    change(store, image="shop/web:2")
    by_revision = replicasets(store)
    assert sorted(by_revision) == [3, 5, 6]
    assert by_revision[5]["metadata"]["annotations"][HISTORY] == "1"
    assert by_revision[6]["metadata"]["annotations"][HISTORY] == "2,4"


def test_annotation_change_alone_is_no_new_revision_but_reaches_the_current_replicaset(
    store: Store,
) -> None:
    create(store)
    obj = deployment(store)
    obj["metadata"]["annotations"]["team"] = "payments"
    store.update("deployments", obj)
    (rs,) = replicasets(store).values()
    assert rs["metadata"]["annotations"]["team"] == "payments"
    assert rs["metadata"]["annotations"][REVISION] == "1"


def test_template_equality_ignores_hash_label_and_empty_fields() -> None:
    a: dict[str, Any] = {
        "metadata": {"labels": {"app": "web"}, "creationTimestamp": None},
        "spec": {"containers": [{"name": "app", "image": "x", "resources": {}}]},
    }
    b = copy.deepcopy(a)
    b["metadata"]["labels"]["pod-template-hash"] = "abc"
    del b["metadata"]["creationTimestamp"]
    del b["spec"]["containers"][0]["resources"]
    assert equal_ignore_hash(a, b)
    b["spec"]["containers"][0]["image"] = "y"
    assert not equal_ignore_hash(a, b)


def test_crashlooping_rollout_stays_progressing_and_unavailable(store: Store) -> None:
    create(store)
    obj = deployment(store)
    obj["spec"]["template"]["metadata"]["annotations"] = {
        "sandbox.auto-rollback/fault": "crashloop"
    }
    store.update("deployments", obj)
    d = deployment(store)
    new_rs = replicasets(store)[2]
    assert d["status"]["updatedReplicas"] == 3
    assert "availableReplicas" not in d["status"]
    assert d["status"]["unavailableReplicas"] == 3
    progressing = condition(d, "Progressing")
    assert (progressing["reason"], progressing["message"]) == (
        "ReplicaSetUpdated",
        f'ReplicaSet "{new_rs["metadata"]["name"]}" is progressing.',
    )
    assert condition(d, "Available")["reason"] == "MinimumReplicasUnavailable"
    assert replicasets(store)[1]["spec"]["replicas"] == 0  # immediate rollout


def test_progress_deadline_exceeded_after_progressDeadlineSeconds_without_progress(
    store: Store, clock: Clock
) -> None:
    create(store)
    obj = deployment(store)
    obj["spec"]["template"]["metadata"]["annotations"] = {
        "sandbox.auto-rollback/fault": "oomkilled"
    }
    store.update("deployments", obj)
    clock.now += timedelta(seconds=601)
    touched = deployment(store)  # a write that changes something makes the controller look
    touched["metadata"]["annotations"]["touched"] = "1"
    store.update("deployments", touched)
    progressing = condition(deployment(store), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_paused_deployment_does_not_roll_but_scales_and_resumes(store: Store) -> None:
    create(store)
    change(store, paused=True)
    progressing = condition(deployment(store), "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "Unknown",
        "DeploymentPaused",
        "Deployment is paused",
    )
    change(store, image="shop/web:2")
    assert sorted(replicasets(store)) == [1]
    assert deployment(store)["status"]["observedGeneration"] == 3
    change(store, replicas=5)
    (rs,) = replicasets(store).values()
    assert rs["spec"]["replicas"] == 5
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "5"
    assert deployment(store)["status"]["availableReplicas"] == 5
    change(store, paused=False)
    by_revision = replicasets(store)
    assert sorted(by_revision) == [1, 2]
    assert image_of(by_revision[2]) == "shop/web:2"
    assert by_revision[2]["spec"]["replicas"] == 5
    assert condition(deployment(store), "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_scaling_keeps_the_progressing_condition(store: Store) -> None:
    create(store)
    before = condition(deployment(store), "Progressing")
    change(store, replicas=1)
    d = deployment(store)
    assert condition(d, "Progressing") == before
    (rs,) = replicasets(store).values()
    assert len(pods_of(store, rs)) == 1
    assert d["status"]["replicas"] == d["status"]["availableReplicas"] == 1


def test_revision_history_limit_prunes_the_oldest_empty_replicasets(store: Store) -> None:
    create(store, revisionHistoryLimit=2)
    for version in range(2, 7):
        change(store, image=f"shop/web:{version}")
    assert sorted(replicasets(store)) == [4, 5, 6]


def test_as_of_write_dates_replicasets_pods_and_conditions(store: Store, clock: Clock) -> None:
    two_hours_ago = clock.now - timedelta(hours=2)
    with store.as_of(two_hours_ago):
        create(store)
    with store.as_of(clock.now - timedelta(minutes=3)):
        change(store, image="shop/web:2")
    by_revision = replicasets(store)
    assert by_revision[1]["metadata"]["creationTimestamp"] == format_time(two_hours_ago)
    three_minutes_ago = format_time(clock.now - timedelta(minutes=3))
    assert by_revision[2]["metadata"]["creationTimestamp"] == three_minutes_ago
    for pod in pods_of(store, by_revision[2]):
        assert pod["status"]["startTime"] == three_minutes_ago
    assert condition(deployment(store), "Progressing")["lastUpdateTime"] == three_minutes_ago


def test_deleted_pod_is_replaced_and_scale_down_removes_unready_pods_first(
    store: Store,
) -> None:
    from sandbox import pods

    create(store)
    (rs,) = replicasets(store).values()
    victim = pods_of(store, rs)[0]["metadata"]["name"]
    store.delete("pods", "shop", victim)
    names = {p["metadata"]["name"] for p in pods_of(store, rs)}
    assert len(names) == 3
    assert victim not in names
    broken = sorted(names)[1]
    pods.set_behaviour(store, "shop", broken, "crashloop", None)
    assert deployment(store)["status"]["readyReplicas"] == 2
    change(store, replicas=2)
    assert broken not in {p["metadata"]["name"] for p in pods_of(store, rs)}
    assert deployment(store)["status"]["readyReplicas"] == 2


def test_orphan_replicaset_matching_the_selector_is_adopted(store: Store) -> None:
    created = create(store)
    (rs,) = replicasets(store).values()
    rs["metadata"]["ownerReferences"] = []
    store.update("replicasets", rs)
    (adopted,) = replicasets(store).values()
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]


def test_scaling_is_reported_as_scalingreplicaset_events_on_the_deployment(
    store: Store,
) -> None:
    create(store)
    change(store, image="shop/web:2")
    by_revision = replicasets(store)
    events, _ = store.list("events", "shop")
    # sync.go getNewReplicaSet / scaleReplicaSet event messages
    assert [
        (e["reason"], e["message"]) for e in events if e["involvedObject"]["name"] == "web"
    ] == [
        (
            "ScalingReplicaSet",
            f"Scaled up replica set {by_revision[1]['metadata']['name']} from 0 to 3",
        ),
        (
            "ScalingReplicaSet",
            f"Scaled up replica set {by_revision[2]['metadata']['name']} from 0 to 3",
        ),
        (
            "ScalingReplicaSet",
            f"Scaled down replica set {by_revision[1]['metadata']['name']} from 3 to 0",
        ),
    ]


def test_pod_created_directly_is_bound_and_started_like_a_kubelet_would(store: Store) -> None:
    store.create(
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "debug", "namespace": "shop"},
            "spec": {"containers": [{"name": "sh", "image": "busybox"}]},
            "status": {"phase": "Pending"},
        },
    )
    pod = store.get("pods", "shop", "debug")
    assert pod["spec"]["nodeName"] == "sandbox-node"
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["containerStatuses"][0]["ready"] is True


def test_terminating_namespace_gets_no_replacement_pods(store: Store) -> None:
    create(store)
    namespace = store.get("namespaces", None, "shop")
    namespace["status"] = {"phase": "Terminating"}
    store.update("namespaces", namespace)
    (rs,) = replicasets(store).values()
    for pod in pods_of(store, rs):
        store.delete("pods", "shop", pod["metadata"]["name"])
    assert pods_of(store, rs) == []
