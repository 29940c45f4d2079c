"""Cascading deletion (sandbox/gc.py) as the garbage collector does it
(kubernetes docs "Garbage Collection" and "Use Cascading Deletion in a Cluster")."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.gc import collect_garbage
from sandbox.store import Store
from tests.sandbox.support import create_deployment


@pytest.fixture
def store(store: Store) -> Store:
    """The shared store (tests/sandbox/conftest.py) with the Deployment created."""
    create_deployment(store)
    return store


def names(store: Store, resource: str) -> list[str]:
    items, _ = store.list(resource, "shop")
    return [item["metadata"]["name"] for item in items]


def delete(store: Store, resource: str, name: str, propagation: str) -> dict[str, Any]:
    deleted = store.delete(resource, "shop", name)
    collect_garbage(store, deleted, propagation=propagation)
    return deleted


@pytest.mark.parametrize("propagation", ["Background", "Foreground"])
def test_deleting_a_deployment_deletes_its_replicasets_and_their_pods(
    store: Store, propagation: str
) -> None:
    assert len(names(store, "replicasets")) == 1
    assert len(names(store, "pods")) == 2
    delete(store, "deployments", "web", propagation)
    assert names(store, "replicasets") == []
    assert names(store, "pods") == []


def test_orphan_deletion_keeps_replicasets_and_pods_without_the_owner_reference(
    store: Store,
) -> None:
    delete(store, "deployments", "web", "Orphan")
    (rs,) = store.list("replicasets", "shop")[0]
    assert "ownerReferences" not in rs["metadata"]
    pods, _ = store.list("pods", "shop")
    assert len(pods) == 2
    # the pods still belong to the surviving ReplicaSet
    assert {p["metadata"]["ownerReferences"][0]["uid"] for p in pods} == {rs["metadata"]["uid"]}


def test_deleting_a_controlled_replicaset_lets_the_deployment_recreate_it(store: Store) -> None:
    (rs_name,) = names(store, "replicasets")
    old_pods = set(names(store, "pods"))
    old = delete(store, "replicasets", rs_name, "Background")
    (rs,) = store.list("replicasets", "shop")[0]
    assert rs["metadata"]["name"] == rs_name
    assert rs["metadata"]["uid"] != old["metadata"]["uid"]
    pods = set(names(store, "pods"))
    assert len(pods) == 2
    assert not pods & old_pods


def test_dependent_with_another_live_owner_only_loses_the_dangling_reference(
    store: Store,
) -> None:
    (rs,) = store.list("replicasets", "shop")[0]
    lease = store.create(
        "leases",
        {"metadata": {"name": "holder", "namespace": "shop", "ownerReferences": []}, "spec": {}},
    )
    pod = store.list("pods", "shop")[0][0]
    pod["metadata"]["ownerReferences"].append(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "name": "holder",
            "uid": lease["metadata"]["uid"],
        }
    )
    store.update("pods", pod)
    target = store.create(
        "leases",
        {
            "metadata": {
                "name": "target",
                "namespace": "shop",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": pod["metadata"]["name"],
                        "uid": pod["metadata"]["uid"],
                    },
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": rs["metadata"]["name"],
                        "uid": rs["metadata"]["uid"],
                    },
                ],
            },
            "spec": {},
        },
    )
    delete(store, "pods", pod["metadata"]["name"], "Background")
    kept = store.get("leases", "shop", target["metadata"]["name"])
    assert [r["kind"] for r in kept["metadata"]["ownerReferences"]] == ["ReplicaSet"]


def test_unknown_propagation_policy_is_refused_by_name(store: Store) -> None:
    deleted = store.delete("deployments", "shop", "web")
    with pytest.raises(ValueError, match="'Sideways'"):
        collect_garbage(store, deleted, propagation="Sideways")


def test_deleting_a_namespace_leaves_nothing_behind_in_it(store: Store) -> None:
    # Pods first, as a client deleting content one kind at a time might: the ReplicaSet
    # replaces them until the namespace itself goes.
    for name in names(store, "pods"):
        store.delete("pods", "shop", name)
    assert len(names(store, "pods")) == 2
    store.delete("namespaces", None, "shop")
    assert [names(store, r) for r in ("deployments", "replicasets", "pods")] == [[], [], []]
