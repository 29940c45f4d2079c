"""The store shares what it can: a watch's history holds the stored objects themselves, and
the controllers read stored objects without copying them and hand the store what they built.
That is only correct while nothing changes a stored (or once stored) object in place, and
while every reader outside the store gets its own copy. These tests fail on either mistake:
a history entry, a watch event or a GET answer that later writes change after the fact, or
a stored object that a client's edit of its answer changes."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from sandbox import api
from sandbox.controller import Controller
from sandbox.routing import parse_request
from sandbox.store import Change, Store
from sandbox.testing import SandboxHandle
from tests.sandbox.support import Clock

NS = "shop"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
REPLICASETS = f"/apis/apps/v1/namespaces/{NS}/replicasets"
PODS = f"/api/v1/namespaces/{NS}/pods"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def _deployment(name: str, image: str, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            **spec,
        },
    }


def _call(
    store: Store,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    reply = api.handle(
        store,
        parse_request(method, path),
        method=method,
        body=b"" if body is None else json.dumps(body).encode(),
        content_type=content_type,
    )
    code = getattr(reply, "code", None)
    assert code in {200, 201}, (method, path, code, getattr(reply, "body", None))
    answer: dict[str, Any] = reply.body  # type: ignore[union-attr]
    return answer


def _text(obj: dict[str, Any] | None) -> str:
    return json.dumps(obj, sort_keys=True)


def _replica_sets(store: Store, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _call(store, "GET", f"{REPLICASETS}?labelSelector=app%3D{app}")[
        "items"
    ]
    return items


def test_every_change_keeps_the_object_it_committed() -> None:
    store = Store(clock=Clock())
    # Subscribed before the controller, so each change is captured before any reconcile it
    # causes runs.
    committed: dict[int, tuple[str, str]] = {}

    def capture(change: Change) -> None:
        committed[int(change.obj["metadata"]["resourceVersion"])] = (
            _text(change.obj),
            _text(change.old),
        )

    store.subscribe(capture)
    Controller(store)
    _call(store, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})

    # A rollout, a rollback to the first template, annotation patches of every kind, a
    # scale through the subresource and a pause: the controllers' writes to Deployments,
    # ReplicaSets, pods and events, and revision-history cleanup (limit 1).
    _call(store, "POST", DEPLOYMENTS, _deployment("web", "shop/web:1", revisionHistoryLimit=1))
    web = _call(store, "GET", f"{DEPLOYMENTS}/web")
    first_template = json.loads(json.dumps(web["spec"]["template"]))
    web["spec"]["template"]["spec"]["containers"][0]["image"] = "shop/web:2"
    _call(store, "PUT", f"{DEPLOYMENTS}/web", web)
    web = _call(store, "GET", f"{DEPLOYMENTS}/web")
    web["spec"]["template"] = first_template
    _call(store, "PUT", f"{DEPLOYMENTS}/web", web)
    for index, rs in enumerate(_replica_sets(store, "web")):
        path = f"{REPLICASETS}/{rs['metadata']['name']}"
        _call(store, "PATCH", path, {"metadata": {"annotations": {"mark": "a"}}}, MERGE)
        _call(store, "PATCH", path, {"metadata": {"labels": {"seen": str(index)}}}, STRATEGIC)
        _call(
            store,
            "PATCH",
            path,
            [{"op": "add", "path": "/metadata/annotations/mark", "value": "b"}],
            JSON_PATCH,
        )
    _call(store, "PATCH", f"{DEPLOYMENTS}/web/scale", {"spec": {"replicas": 3}}, MERGE)
    _call(store, "PATCH", f"{DEPLOYMENTS}/web", {"spec": {"paused": True}}, MERGE)
    _call(store, "PATCH", f"{DEPLOYMENTS}/web", {"spec": {"replicas": 1}}, MERGE)
    _call(store, "PATCH", f"{DEPLOYMENTS}/web", {"spec": {"paused": False}}, MERGE)

    # The pods' controller: a pod nobody started, then a fault and its removal by annotation.
    _call(
        store,
        "POST",
        PODS,
        {"metadata": {"name": "bare"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}},
    )
    fault = {"metadata": {"annotations": {"sandbox.auto-rollback/fault": "crashloop"}}}
    _call(store, "PATCH", f"{PODS}/bare", fault, MERGE)
    _call(store, "PATCH", f"{PODS}/bare", {"metadata": {"annotations": None}}, MERGE)

    # Adoption of an orphan, then the garbage collector: orphaning, foreground and
    # background cascades, and a namespace emptied by its deletion.
    _call(store, "POST", DEPLOYMENTS, _deployment("api", "shop/api:1"))
    (api_rs,) = _replica_sets(store, "api")
    orphan = f"{REPLICASETS}/{api_rs['metadata']['name']}"
    _call(store, "DELETE", f"{DEPLOYMENTS}/api", {"propagationPolicy": "Orphan"})
    _call(store, "POST", DEPLOYMENTS, _deployment("api", "shop/api:1"))
    assert _call(store, "GET", orphan)["metadata"]["ownerReferences"][0]["name"] == "api"
    rs_name = _replica_sets(store, "web")[0]["metadata"]["name"]
    _call(store, "DELETE", f"{REPLICASETS}/{rs_name}", {"propagationPolicy": "Foreground"})
    _call(store, "DELETE", f"{DEPLOYMENTS}/api", {"propagationPolicy": "Background"})
    _call(store, "DELETE", f"/api/v1/namespaces/{NS}")

    history = store.changes_since(0)
    assert len(history) == len(committed) > 50
    resources = {change.resource for change in history}
    assert {"deployments", "replicasets", "pods", "events", "namespaces"} <= resources
    assert {change.type for change in history} == {"ADDED", "MODIFIED", "DELETED"}
    previous: dict[tuple[str, str, str], str] = {}
    for change in history:
        meta = change.obj["metadata"]
        rv = int(meta["resourceVersion"])
        assert (_text(change.obj), _text(change.old)) == committed[rv], (change.type, rv)
        key = (change.resource, meta.get("namespace") or "", meta["name"])
        if change.type == "MODIFIED":
            # The object a write replaced is the one the previous write committed.
            assert _text(change.old) == previous[key], (change.resource, rv)
        previous[key] = _text(change.obj)


def test_a_client_changing_what_it_got_changes_nothing_stored(clock: Clock) -> None:
    store = Store(clock=clock)
    Controller(store)
    _call(store, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    created = _call(store, "POST", DEPLOYMENTS, _deployment("web", "shop/web:1"))
    got = _call(store, "GET", f"{DEPLOYMENTS}/web")
    before = _text(got)
    patched = _call(
        store, "PATCH", f"{DEPLOYMENTS}/web", {"metadata": {"labels": {"a": "1"}}}, MERGE
    )
    listed = _call(store, "GET", DEPLOYMENTS)["items"][0]
    stored = _text(store.get("deployments", NS, "web"))
    rs_name = _replica_sets(store, "web")[0]["metadata"]["name"]
    rs_stored = _text(store.get("replicasets", NS, rs_name))
    # A GET's answer is as it was read, whatever was written after it.
    assert _text(got) == before
    answers = [
        created,
        got,
        patched,
        listed,
        store.get("deployments", NS, "web"),
        store.list("deployments", NS)[0][0],
        *store.owned_by(created["metadata"]["uid"], "replicasets"),
        *_replica_sets(store, "web"),
    ]
    for answer in answers:
        answer["metadata"].setdefault("labels", {})["changed"] = "by the client"
        answer["metadata"]["annotations"] = {"changed": "by the client"}
        answer["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:1"
        answer.setdefault("status", {})["replicas"] = 99
    assert _text(store.get("deployments", NS, "web")) == stored
    assert _text(store.get("replicasets", NS, rs_name)) == rs_stored
    # Nor what the watch history holds (the store shares it with the stored objects).
    for change in store.changes_since(0):
        assert "evil:1" not in _text(change.obj) and "evil:1" not in _text(change.old)


def _watch(sandbox: SandboxHandle, path: str, since: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"{sandbox.url}{path}?watch=true&resourceVersion={since}&timeoutSeconds=1",
        headers={"Authorization": f"Bearer {sandbox.token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return [json.loads(line) for line in response.read().splitlines() if line.strip()]


def test_a_watch_replays_each_version_as_it_was_written(sandbox: SandboxHandle) -> None:
    store = sandbox.store
    _call(store, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    _call(store, "POST", DEPLOYMENTS, _deployment("web", "shop/web:1"))
    since = str(store.resource_version)
    web = _call(store, "GET", f"{DEPLOYMENTS}/web")
    (first,) = _replica_sets(store, "web")
    path = f"{REPLICASETS}/{first['metadata']['name']}"
    marks = [
        _call(store, "PATCH", path, {"metadata": {"annotations": {"mark": value}}}, MERGE)
        for value in ("1", "2")
    ]
    web["spec"]["template"]["spec"]["containers"][0]["image"] = "shop/web:2"
    rolled = _call(store, "PUT", f"{DEPLOYMENTS}/web", web)
    _call(store, "PATCH", path, {"metadata": {"annotations": {"mark": "3"}}}, MERGE)

    events = _watch(sandbox, REPLICASETS, since)
    mine = [e for e in events if e["object"]["metadata"]["name"] == first["metadata"]["name"]]
    seen = [
        (
            (e["object"]["metadata"].get("annotations") or {}).get("mark"),
            e["object"]["spec"]["replicas"],
            e["object"]["status"]["replicas"],
        )
        for e in mine
    ]
    # Each write's own version: the marks in order, then the scale-down to 0 and the status
    # that follows it, before mark 3.
    assert seen == [("1", 2, 2), ("2", 2, 2), ("2", 0, 2), ("2", 0, 0), ("3", 0, 0)], seen
    for mark in marks:
        (event,) = [
            e
            for e in mine
            if e["object"]["metadata"]["resourceVersion"] == mark["metadata"]["resourceVersion"]
        ]
        assert event["object"] == mark
    deployments = _watch(sandbox, DEPLOYMENTS, since)
    (put,) = [
        e
        for e in deployments
        if e["object"]["metadata"]["resourceVersion"] == rolled["metadata"]["resourceVersion"]
    ]
    # The client's PUT as it was stored, before the controller wrote the new revision.
    assert put["object"] == rolled
    later = [e["object"] for e in deployments if e is not put and e["type"] == "MODIFIED"]
    assert any(obj["metadata"]["annotations"] != rolled["metadata"]["annotations"] for obj in later)
