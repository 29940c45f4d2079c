"""The sandbox's Deployment and ReplicaSet controllers, run synchronously inside each write.

The semantics follow kubernetes/kubernetes pkg/controller/deployment (sync.go, rolling.go,
progress.go, util/deployment_util.go) where kubectl and this product can observe them:
ReplicaSet names and the pod-template-hash label, revision and revision-history annotations,
re-adoption of an equal template, desired/max-replicas annotations, status counts, the
Available and Progressing conditions with upstream reasons and messages, paused Deployments,
revisionHistoryLimit pruning, adoption and release by selector.

One deliberate difference: a rollout is immediate. The new ReplicaSet is scaled to
spec.replicas and every old one to 0 in the same pass (no maxSurge/maxUnavailable steps), so
each write leaves the cluster settled. Because no intermediate rolling step is ever
observed, a pass that scales ReplicaSets for a rollout counts as progress (upstream sees that
progress one resync later, in the ReplicaSets' status).

The pure helpers live in `deployment_util`, the ReplicaSet controller's half in
`replicasets`.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from sandbox import gc, pods, replicasets
from sandbox.deployment_util import (
    active_or_latest,
    calculate_status,
    compute_hash,
    deployment_complete,
    deployment_progressing,
    equal_ignore_hash_to,
    get_condition,
    is_scaling_event,
    paused_conditions,
    remove_condition,
    revision,
    set_condition,
    set_min_ready,
    set_new_replicaset_annotations,
    set_replicas_annotations,
)
from sandbox.events import record_event
from sandbox.selectors import SelectorError, labels_match, selector_from_label_selector
from sandbox.store import Change, NotFound, Store, clone, format_time, parse_time
from webhook import contract

MAX_INT32: Final = 2**31 - 1
# A reconcile that keeps writing past this many steps is a bug, not a slow cluster.
MAX_STEPS: Final = 10000

Key = tuple[str, str, str]  # (resource, namespace, name)


class Controller:
    """Reconciles Deployments, ReplicaSets and their pods after every store write."""

    def __init__(self, store: Store) -> None:
        """Subscribe to `store`; from now on every write is reconciled before it returns."""
        self._store = store
        self._local = threading.local()
        store.subscribe(self._on_change)

    def _on_change(self, change: Change) -> None:
        pending: dict[Key, None] | None = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = {}
        for key in self._affected(change):
            pending[key] = None
        if getattr(self._local, "draining", False):
            return  # our own write: the outermost call drains it
        self._local.draining = True
        try:
            with self._store.lock:
                self._drain(pending)
        finally:
            self._local.draining = False
            pending.clear()

    def _drain(self, pending: dict[Key, None]) -> None:
        steps = 0
        while pending:
            steps += 1
            if steps > MAX_STEPS:
                raise RuntimeError(f"sandbox controller did not settle: still pending {pending}")
            # ReplicaSets (and so pods) settle before their Deployment's status is computed.
            key = next((k for k in pending if k[0] == "replicasets"), next(iter(pending)))
            del pending[key]
            resource, namespace, name = key
            if resource == "namespaces":
                _empty_namespace(self._store, name)
                continue
            # The stored object, not a copy: each sync only reads it and copies what it writes.
            obj = self._store.peek(resource, namespace, name)
            if obj is None:
                continue
            if resource == "replicasets":
                replicasets.sync_replicaset(self._store, obj)
            elif resource == "pods":
                pods.start_pod(self._store, obj)
                started = self._store.peek(resource, namespace, name)
                if started is not None:
                    pods.sync_behaviour(self._store, started)
            else:
                _reconcile_deployment(self._store, obj)

    def _affected(self, change: Change) -> list[Key]:
        meta = change.obj.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        owner = _controller_owner(change.obj)
        if change.resource == "namespaces":
            return [("namespaces", "", name)] if change.type == "DELETED" else []
        if change.resource == "deployments":
            return [] if change.type == "DELETED" else [("deployments", namespace, name)]
        if change.resource == "replicasets":
            keys: list[Key] = []
            if change.type != "DELETED":
                keys.append(("replicasets", namespace, name))
            if owner and owner[0] == "Deployment":
                keys.append(("deployments", namespace, owner[1]))
            elif owner is None and change.type != "DELETED":
                keys.extend(self._adopters(namespace, change.obj))
            return keys
        if change.resource == "pods":
            keys = [("pods", namespace, name)] if change.type != "DELETED" else []
            # The old controller too (replica_set.go updatePod): a pod released by an edit
            # of its ownerReferences is one its ReplicaSet must replace.
            former = _controller_owner(change.old) if change.old is not None else None
            for ref in (owner, former):
                if ref and ref[0] == "ReplicaSet":
                    keys.append(("replicasets", namespace, ref[1]))
            return keys
        return []

    def _adopters(self, namespace: str, rs: dict[str, Any]) -> list[Key]:
        # An orphan is rare; its would-be adopters are found without copying every
        # Deployment of the namespace.
        deployments, _ = self._store.list("deployments", namespace, where=lambda d: _selects(d, rs))
        return [("deployments", namespace, d["metadata"]["name"]) for d in deployments]


def _empty_namespace(store: Store, namespace: str) -> None:
    # The namespace controller deletes what is left in a deleted namespace, owners first so
    # nothing is recreated (and nothing is: the namespace no longer accepts new content).
    for resource in gc.DEPENDENT_RESOURCES:
        items, _ = store.list(resource, namespace)
        for item in items:
            try:
                store.delete(resource, namespace, item["metadata"]["name"])
            except NotFound:
                continue


def _controller_owner(obj: dict[str, Any]) -> tuple[str, str] | None:
    ref = replicasets.controller_of(obj)
    return (str(ref.get("kind")), str(ref.get("name"))) if ref is not None else None


def _selects(deployment: dict[str, Any], obj: dict[str, Any]) -> bool:
    try:
        requirements = selector_from_label_selector((deployment.get("spec") or {}).get("selector"))
    except (SelectorError, KeyError):
        return False
    return bool(requirements) and labels_match(requirements, obj)


def _reconcile_deployment(store: Store, stored: dict[str, Any]) -> None:
    """One pass of DeploymentController.syncDeployment for the `stored` Deployment
    (immediate rollout); `stored` is read-only (Store.peek)."""
    # What this pass changes is its annotations and status: only the path to them is copied
    # (store.update copies the whole object it stores).
    deployment = dict(stored)
    meta = deployment["metadata"] = dict(stored["metadata"])
    if isinstance(meta.get("annotations"), dict):
        meta["annotations"] = dict(meta["annotations"])
    spec = deployment.get("spec") or {}
    if meta.get("deletionTimestamp"):
        return
    now = format_time(store.now())
    owned = _claim_replicasets(store, deployment)
    owned.sort(key=lambda rs: (rs["metadata"].get("creationTimestamp", ""), rs["metadata"]["name"]))
    old_status: dict[str, Any] = deployment.get("status") or {}
    status = clone(old_status)
    paused = bool(spec.get("paused"))
    deadline = spec.get("progressDeadlineSeconds", 600)
    has_deadline = deadline is not None and int(deadline) != MAX_INT32
    if has_deadline:
        paused_conditions(status, paused=paused, now=now)
    replicas = int(spec.get("replicas", 1))
    template = spec.get("template") or {}
    same_template = equal_ignore_hash_to(template)
    new_rs = next((rs for rs in owned if same_template(rs["spec"].get("template"))), None)
    old = [rs for rs in owned if rs is not new_rs]
    new_revision = max((revision(rs) for rs in old), default=0) + 1
    annotations = meta.setdefault("annotations", {})
    before = dict(annotations)
    if new_rs is not None:
        rs_copy = clone(new_rs)
        changed = set_new_replicaset_annotations(deployment, rs_copy, new_revision, exists=True)
        min_ready = int(spec.get("minReadySeconds", 0))
        if changed or int(rs_copy["spec"].get("minReadySeconds", 0)) != min_ready:
            set_min_ready(rs_copy, min_ready)
            # Upstream returns here too: the Deployment's revision follows on the next pass.
            new_rs = store.update("replicasets", rs_copy, adopt=True)
        else:
            annotations[contract.REVISION] = rs_copy["metadata"]["annotations"][contract.REVISION]
            if has_deadline and get_condition(status, "Progressing") is None:
                name = rs_copy["metadata"]["name"]
                set_condition(
                    status,
                    "Progressing",
                    "True",
                    "FoundNewReplicaSet",
                    f'Found new replica set "{name}"',
                    now=now,
                )
    scaling = is_scaling_event(replicas, [*old, *([new_rs] if new_rs else [])])
    rolling = not paused and not scaling
    progressed = False
    if new_rs is None and rolling and replicasets.accepts_new_content(store, meta["namespace"]):
        new_rs = _create_replicaset(store, deployment, status, new_revision, now=now)
        annotations[contract.REVISION] = str(new_revision)
        if has_deadline:
            set_condition(
                status,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                f'Created new replica set "{new_rs["metadata"]["name"]}"',
                now=now,
            )
        progressed = True
    if rolling and new_rs is not None:
        if int(new_rs["spec"].get("replicas", 1)) != replicas:
            new_rs = _scale(store, deployment, new_rs, replicas)
            progressed = True
        for index, rs in enumerate(old):
            if int(rs["spec"].get("replicas", 1)) != 0:
                old[index] = _scale(store, deployment, rs, 0)
                progressed = True
    elif not rolling:
        # sync.go scale(): paused or a scaling event only resizes the active ReplicaSet.
        target = active_or_latest(new_rs, old)
        if target is not None and int(target["spec"].get("replicas", 1)) != replicas:
            scaled = _scale(store, deployment, target, replicas)
            if target is new_rs:
                new_rs = scaled
            else:
                old = [scaled if rs is target else rs for rs in old]
    if paused or (rolling and deployment_complete(deployment, old_status)):
        _cleanup(store, deployment, old)
    new_status = calculate_status(deployment, new_rs, old, status, now=now)
    if rolling:
        _rollout_conditions(
            store,
            deployment,
            status,
            new_status,
            new_rs,
            progressed=progressed,
            has_deadline=has_deadline,
            now=now,
        )
    if new_status != old_status or annotations != before:
        deployment["status"] = new_status
        # A whole copy of our own (`deployment` shares all but its top level, metadata and
        # annotations with the stored object) for the store to keep; the answer is unused.
        store.update("deployments", clone(deployment), adopt=True)


def _claim_replicasets(store: Store, deployment: dict[str, Any]) -> list[dict[str, Any]]:
    # ControllerRefManager: keep what we control and still select, release what we no longer
    # select, adopt orphans we select.
    # Only what this Deployment controls and the namespace's orphans are read (the store
    # indexes both), so the cost follows the Deployment, not the size of its namespace.
    # The stored ReplicaSets themselves (read-only): what is released or adopted is copied.
    meta = deployment["metadata"]
    controlled = store.owned_by(meta["uid"], "replicasets", controller=True, copy=False)
    items = [rs for rs in controlled if rs["metadata"]["namespace"] == meta["namespace"]]
    items.extend(store.uncontrolled("replicasets", meta["namespace"], copy=False))
    items.sort(key=lambda rs: rs["metadata"]["name"])
    owned = []
    for rs in items:
        controller = replicasets.controller_uid(rs)
        selected = _selects(deployment, rs)
        refs = rs["metadata"].get("ownerReferences") or []
        if controller == meta["uid"] and selected:
            owned.append(rs)
        elif controller == meta["uid"]:
            rs = clone(rs)
            rs["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != meta["uid"]]
            store.update("replicasets", rs)
        elif controller is None and selected and not rs["metadata"].get("deletionTimestamp"):
            ref = replicasets.controller_ref(deployment, kind="Deployment", api_version="apps/v1")
            rs = clone(rs)
            rs["metadata"]["ownerReferences"] = [*refs, ref]
            owned.append(store.update("replicasets", rs))
    return owned


def _create_replicaset(
    store: Store, deployment: dict[str, Any], status: dict[str, Any], new_revision: int, *, now: str
) -> dict[str, Any]:
    # DeploymentController.getNewReplicaSet, creation branch.
    meta, spec = deployment["metadata"], deployment["spec"]
    template = clone(spec.get("template") or {})
    collisions = status.get("collisionCount")
    while True:
        pod_hash = compute_hash(template, collisions)
        name = f"{meta['name']}-{pod_hash}"
        if store.peek("replicasets", meta["namespace"], name) is None:
            break
        collisions = int(collisions or 0) + 1  # a different template took the name
        status["collisionCount"] = collisions
    tmeta = template.setdefault("metadata", {})
    labels = {**(tmeta.get("labels") or {}), contract.POD_TEMPLATE_HASH: pod_hash}
    tmeta["labels"] = labels
    selector = clone(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[contract.POD_TEMPLATE_HASH] = pod_hash
    rs: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": dict(labels),
            "ownerReferences": [
                replicasets.controller_ref(deployment, kind="Deployment", api_version="apps/v1")
            ],
        },
        "spec": {
            "replicas": int(spec.get("replicas", 1)),
            "selector": selector,
            "template": template,
        },
        "status": {"replicas": 0},
    }
    set_min_ready(rs, int(spec.get("minReadySeconds", 0)))
    set_new_replicaset_annotations(deployment, rs, new_revision, exists=False)
    # Everything in `rs` was built or copied here, so the store may keep it as it is.
    created = store.create("replicasets", rs, adopt=True)
    if rs["spec"]["replicas"] > 0:
        record_event(
            store,
            deployment,
            reason="ScalingReplicaSet",
            message=f"Scaled up replica set {name} from 0 to {rs['spec']['replicas']}",
        )
    return created


def _scale(
    store: Store, deployment: dict[str, Any], rs: dict[str, Any], replicas: int
) -> dict[str, Any]:
    # DeploymentController.scaleReplicaSet: the size and the desired/max-replicas annotations.
    rs = clone(rs)
    before = int(rs["spec"].get("replicas", 1))
    rs["spec"]["replicas"] = replicas
    set_replicas_annotations(deployment, rs)
    updated = store.update("replicasets", rs, adopt=True)
    direction = "up" if before < replicas else "down"
    record_event(
        store,
        deployment,
        reason="ScalingReplicaSet",
        message=f"Scaled {direction} replica set {rs['metadata']['name']} "
        f"from {before} to {replicas}",
    )
    return updated


def _cleanup(store: Store, deployment: dict[str, Any], old: list[dict[str, Any]]) -> None:
    # DeploymentController.cleanupDeployment: oldest revisions first, only empty ones.
    limit = deployment["spec"].get("revisionHistoryLimit", 10)
    if limit is None or int(limit) == MAX_INT32:
        return
    alive = [rs for rs in old if not rs["metadata"].get("deletionTimestamp")]
    excess = len(alive) - int(limit)
    if excess <= 0:
        return
    alive.sort(key=lambda rs: (revision(rs), rs["metadata"].get("creationTimestamp", "")))
    for rs in alive[:excess]:
        rs_status = rs.get("status") or {}
        if (
            rs_status.get("replicas", 0)
            or int(rs["spec"].get("replicas", 1))
            or rs["metadata"].get("generation", 1) > rs_status.get("observedGeneration", 0)
        ):
            continue
        deleted = store.delete("replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"])
        gc.collect_garbage(store, deleted, propagation="Background")


def _rollout_conditions(
    store: Store,
    deployment: dict[str, Any],
    status: dict[str, Any],
    new_status: dict[str, Any],
    new_rs: dict[str, Any] | None,
    *,
    progressed: bool,
    has_deadline: bool,
    now: str,
) -> None:
    # progress.go syncRolloutStatus.
    if not has_deadline:
        remove_condition(new_status, "Progressing")
        return
    current = get_condition(status, "Progressing")
    already_complete = (
        new_status.get("replicas", 0) == new_status.get("updatedReplicas", 0)
        and current is not None
        and current.get("reason") == "NewReplicaSetAvailable"
    )
    if already_complete:
        return
    what = (
        f'ReplicaSet "{new_rs["metadata"]["name"]}"'
        if new_rs
        else (f'Deployment "{deployment["metadata"]["name"]}"')
    )
    if deployment_complete(deployment, new_status):
        set_condition(
            new_status,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            f"{what} has successfully progressed.",
            now=now,
        )
    elif progressed or deployment_progressing(status, new_status):
        transition = now
        if current is not None and current.get("status") == "True":
            transition = current.get("lastTransitionTime", now)
        remove_condition(new_status, "Progressing")
        set_condition(
            new_status,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            f"{what} is progressing.",
            now=now,
        )
        for condition in new_status["conditions"]:
            if condition["type"] == "Progressing":
                condition["lastTransitionTime"] = transition
    elif _timed_out(store, deployment, new_status):
        set_condition(
            new_status,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            f"{what} has timed out progressing.",
            now=now,
        )


def _timed_out(store: Store, deployment: dict[str, Any], status: dict[str, Any]) -> bool:
    # util.DeploymentTimedOut
    condition = get_condition(status, "Progressing")
    if condition is None or condition.get("reason") == "NewReplicaSetAvailable":
        return False
    if condition.get("reason") == "ProgressDeadlineExceeded":
        return True
    deadline = int(deployment["spec"].get("progressDeadlineSeconds", 600))
    since = parse_time(condition.get("lastUpdateTime") or format_time(store.now()))
    return (store.now() - since).total_seconds() > deadline
