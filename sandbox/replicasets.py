"""The sandbox's ReplicaSet controller: pods per ReplicaSet and the ReplicaSet's status,
plus the ownerReference helpers the Deployment controller shares.

Pods it creates are started at once (`pods.start_containers`); what they do after that is
`pods`' business.
"""

from __future__ import annotations

from typing import Any

from sandbox import pods
from sandbox.store import Store, clone, format_time


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The object's controller ownerReference, if any."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((ref for ref in refs if ref.get("controller")), None)


def controller_uid(obj: dict[str, Any]) -> str | None:
    """The uid in the object's controller ownerReference, if any."""
    ref = controller_of(obj)
    return str(ref.get("uid")) if ref is not None else None


def controller_ref(owner: dict[str, Any], *, kind: str, api_version: str) -> dict[str, Any]:
    """metav1.NewControllerRef: the ownerReference a controller puts on what it creates."""
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _new_pod_name(store: Store, rs: dict[str, Any]) -> str:
    # Like generateName (5 random safe characters), but derived from the store's state so a
    # run is reproducible.
    namespace, base = rs["metadata"]["namespace"], rs["metadata"]["name"]
    attempt = 0
    while True:
        seed = pods.fnv32a(f"{base}/{store.resource_version}/{attempt}".encode())
        alphabet = pods.SAFE_ALPHABET
        suffix = "".join(alphabet[(seed >> (5 * i)) % len(alphabet)] for i in range(5))
        name = f"{base}-{suffix}"
        if store.peek("pods", namespace, name) is None:
            return name
        attempt += 1


def new_pod(store: Store, rs: dict[str, Any]) -> dict[str, Any]:
    """Create one pod from the ReplicaSet's template, scheduled and started at once."""
    template = rs["spec"].get("template") or {}
    tmeta = template.get("metadata") or {}
    meta: dict[str, Any] = {
        "name": _new_pod_name(store, rs),
        "generateName": rs["metadata"]["name"] + "-",
        "namespace": rs["metadata"]["namespace"],
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [controller_ref(rs, kind="ReplicaSet", api_version="apps/v1")],
    }
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    spec = clone(template.get("spec") or {})
    spec["nodeName"] = pods.NODE_NAME
    pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    now = store.now()
    meta["creationTimestamp"] = format_time(now)
    pods.start_containers(pod, now)
    # Everything in `pod` was built or copied here, so the store may keep it as it is.
    return store.create("pods", pod, adopt=True)


def _deletion_rank(pod: dict[str, Any]) -> tuple[int, str, str]:
    # controller.ActivePods ordering, simplified: not-ready pods go first, then the newest.
    meta = pod["metadata"]
    ready = 1 if pods.is_ready(pod) else 0
    return (ready, _negate(meta.get("creationTimestamp", "")), meta["name"])


def _negate(text: str) -> str:
    return "".join(chr(0x10FFFF - ord(c)) for c in text)


def accepts_new_content(store: Store, namespace: str) -> bool:
    """Whether objects may be created in `namespace`: it exists and is not terminating (the
    apiserver's NamespaceLifecycle admission refuses both)."""
    found = store.peek("namespaces", None, namespace)
    if found is None:
        return False
    terminating = (found.get("status") or {}).get("phase") == "Terminating"
    return not terminating and not found["metadata"].get("deletionTimestamp")


def sync_replicaset(store: Store, rs: dict[str, Any]) -> None:
    """Create or delete pods until the ReplicaSet owns spec.replicas of them, then write its
    status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
    observedGeneration), as the ReplicaSet controller does. `rs` is read-only (Store.peek)."""
    meta = rs["metadata"]
    if meta.get("deletionTimestamp"):
        return
    uid = meta["uid"]
    # The store's owner index: only this ReplicaSet's pods are read, whatever else the
    # namespace holds.
    owned = [
        pod  # the stored pods (read-only): only counted, sorted and deleted by name
        for pod in store.owned_by(uid, "pods", controller=True, copy=False)
        if pod["metadata"]["namespace"] == meta["namespace"]
    ]
    want = int(rs["spec"].get("replicas", 1))
    if accepts_new_content(store, meta["namespace"]):
        for _ in range(want - len(owned)):
            owned.append(new_pod(store, rs))
    if len(owned) > want:
        owned.sort(key=_deletion_rank)
        for pod in owned[: len(owned) - want]:
            store.delete("pods", meta["namespace"], pod["metadata"]["name"])
        owned = owned[len(owned) - want :]
    labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    ready = sum(1 for p in owned if pods.is_ready(p))
    status: dict[str, Any] = {"replicas": len(owned)}
    fully_labeled = sum(
        1
        for p in owned
        if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
    )
    # omitempty, as the apiserver serialises ReplicaSetStatus; every ready pod counts as
    # available (minReadySeconds is not waited for).
    for key, value in (
        ("fullyLabeledReplicas", fully_labeled),
        ("readyReplicas", ready),
        ("availableReplicas", ready),
    ):
        if value:
            status[key] = value
    status["observedGeneration"] = meta.get("generation", 1)
    current = store.peek("replicasets", meta["namespace"], meta["name"])
    if current is None or current["metadata"]["uid"] != uid:
        return
    if current.get("status") != status:
        # A whole copy of our own for the store to keep (the answer is unused).
        store.update("replicasets", clone({**current, "status": status}), adopt=True)
