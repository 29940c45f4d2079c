"""The store's namespace and owner indexes, which the controllers read inside every write:
they must follow ownerReference edits, relabelling and deletions, or a controller would miss
(or keep) what it owns."""

from __future__ import annotations

from typing import Any

from sandbox import gc
from sandbox.store import Store
from tests.sandbox.support import create_deployment

NEIGHBOUR = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: app, image: "shop/api:1"}]
"""


def names(items: list[dict[str, Any]]) -> list[str]:
    return [item["metadata"]["name"] for item in items]


def test_released_pod_leaves_its_replicaset_which_replaces_it(store: Store) -> None:
    web = create_deployment(store)
    (rs,) = store.owned_by(web["metadata"]["uid"], "replicasets", controller=True)
    pods = store.owned_by(rs["metadata"]["uid"], "pods", controller=True)
    assert len(pods) == 2
    pod = pods[0]
    pod["metadata"]["ownerReferences"] = []
    store.update("pods", pod)
    # Orphaned: the ReplicaSet no longer counts it (and makes a replacement), and it is
    # listed as uncontrolled in its namespace.
    assert pod["metadata"]["name"] not in names(store.owned_by(rs["metadata"]["uid"], "pods"))
    assert pod["metadata"]["name"] in names(store.uncontrolled("pods", "shop"))
    assert len(store.owned_by(rs["metadata"]["uid"], "pods", controller=True)) == 2


def test_relabelled_replicaset_is_released_and_the_neighbour_is_untouched(store: Store) -> None:
    web = create_deployment(store)
    api = create_deployment(store, NEIGHBOUR)
    (api_rs,) = store.owned_by(api["metadata"]["uid"], "replicasets")
    (old,) = store.owned_by(web["metadata"]["uid"], "replicasets")
    old["metadata"]["labels"] = {"app": "elsewhere"}
    old["spec"]["template"]["metadata"]["labels"] = {"app": "elsewhere"}
    old["spec"]["selector"] = {"matchLabels": {"app": "elsewhere"}}
    store.update("replicasets", old)
    current = store.owned_by(web["metadata"]["uid"], "replicasets")
    assert old["metadata"]["name"] not in names(current)
    assert old["metadata"]["name"] in names(store.uncontrolled("replicasets", "shop"))
    assert len(current) == 1
    assert store.owned_by(api["metadata"]["uid"], "replicasets") == [
        store.get("replicasets", "shop", api_rs["metadata"]["name"])
    ]


def test_deleted_objects_leave_every_index(store: Store) -> None:
    web = create_deployment(store)
    (rs,) = store.owned_by(web["metadata"]["uid"], "replicasets")
    store.delete("deployments", "shop", "web")
    gc.collect_garbage(store, web, propagation="Background")
    assert store.owned_by(web["metadata"]["uid"], "replicasets") == []
    assert store.owned_by(rs["metadata"]["uid"], "pods") == []
    assert store.list("pods", "shop")[0] == []
    assert store.uncontrolled("replicasets", "shop") == []


def test_label_narrowed_list_follows_relabelling_and_deletion(store: Store) -> None:
    create_deployment(store)
    create_deployment(store, NEIGHBOUR)

    def listed(key: str, value: str) -> list[str]:
        items, _ = store.list("pods", "shop", label=(key, value))
        return names(items)

    web_pods = listed("app", "web")
    assert len(web_pods) == 2 and len(listed("app", "api")) == 1
    pod = store.get("pods", "shop", web_pods[0])
    pod["metadata"]["labels"] = {**pod["metadata"]["labels"], "app": "moved"}
    store.update("pods", pod)
    assert listed("app", "moved") == [web_pods[0]]
    # Its ReplicaSet no longer selects it by label, but still controls it by ownerReference.
    assert web_pods[0] not in listed("app", "web")
    store.delete("pods", "shop", web_pods[0])
    assert listed("app", "moved") == []
