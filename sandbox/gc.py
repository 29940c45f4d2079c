"""Cascading deletion through ownerReferences, as the garbage collector does it.

The apiserver removes the object; the garbage collector then deals with its dependents
(objects whose metadata.ownerReferences name the deleted uid):
- "Background" (the default for apps/v1 and core/v1): dependents are deleted, and theirs in
  turn;
- "Foreground": the same, deepest dependents first (upstream keeps the owner, with a
  foregroundDeletion finalizer, until they are gone; here the owner is already deleted
  when this runs, so only the order is kept);
- "Orphan": the reference to the deleted owner is removed from each dependent, which stays.
A dependent that still has another live owner only loses the dangling reference
(garbagecollector.go attemptToDeleteItem: "solid" owners keep it).
"""

from __future__ import annotations

from typing import Any, Final

from sandbox.store import CLUSTER_SCOPED, NotFound, Store, format_time

PROPAGATIONS: Final = ("Background", "Foreground", "Orphan")
# Resources the sandbox serves that can carry ownerReferences.
DEPENDENT_RESOURCES: Final = ("deployments", "replicasets", "pods", "events", "leases")


def dependents(store: Store, owner: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(resource, object) of every stored object with an ownerReference to `owner`'s uid."""
    uid = owner["metadata"]["uid"]
    namespace = owner["metadata"].get("namespace")
    found: list[tuple[str, dict[str, Any]]] = []
    for resource in DEPENDENT_RESOURCES:
        # The store's owner index: only the dependents are read, not every object.
        items = store.owned_by(uid, resource)
        found.extend(
            (resource, item)
            for item in items
            if not namespace or item["metadata"].get("namespace") == namespace
        )
    return found


def _uid_exists(store: Store, ref: dict[str, Any], namespace: str | None) -> bool:
    resource = {
        "Deployment": "deployments",
        "ReplicaSet": "replicasets",
        "Pod": "pods",
        "Namespace": "namespaces",
    }.get(str(ref.get("kind")))
    if resource is None:
        return False  # an owner kind the sandbox does not serve is treated as gone
    try:
        found = store.get(
            resource, None if resource in CLUSTER_SCOPED else namespace, str(ref.get("name"))
        )
    except NotFound:
        return False
    return bool(found["metadata"].get("uid") == ref.get("uid"))


def collect_garbage(store: Store, deleted: dict[str, Any], *, propagation: str) -> None:
    """Apply `propagation` to the dependents of the just-deleted object `deleted`.
    Raises ValueError naming the value for an unknown propagationPolicy."""
    if propagation not in PROPAGATIONS:
        raise ValueError(
            f"unknown propagationPolicy {propagation!r}: expected one of {', '.join(PROPAGATIONS)}"
        )
    uid = deleted["metadata"]["uid"]
    with store.lock:
        for resource, item in dependents(store, deleted):
            meta = item["metadata"]
            refs = meta.get("ownerReferences") or []
            others = [r for r in refs if r.get("uid") != uid]
            alive = [r for r in others if _uid_exists(store, r, meta.get("namespace"))]
            if propagation == "Orphan" or alive:
                meta["ownerReferences"] = others
                if not others:
                    del meta["ownerReferences"]
                try:
                    store.update(resource, item, check_rv=False)
                except NotFound:
                    pass  # deleted meanwhile by an earlier cascade step
                continue
            if propagation == "Foreground":
                # Marked as being deleted first, as upstream does, so its controller stops
                # replacing the dependents removed before it.
                meta["deletionTimestamp"] = format_time(store.now())
                meta["finalizers"] = [*(meta.get("finalizers") or []), "foregroundDeletion"]
                item = store.update(resource, item, check_rv=False)
                collect_garbage(store, item, propagation=propagation)
                meta = item["metadata"]
            try:
                gone = store.delete(resource, meta.get("namespace"), meta["name"])
            except NotFound:
                continue
            if propagation == "Background":
                collect_garbage(store, gone, propagation=propagation)
