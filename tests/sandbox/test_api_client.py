"""The official Python client against the sandbox: what our receiver relies on.

Where a status code or reason is asserted, the comment names the apiserver source it
comes from (kubernetes/kubernetes, staging/src/k8s.io/...).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from sandbox.testing import SandboxHandle


def manifest(
    name: str, *, image: str = "nginx:1.25", labels: dict[str, str] | None = None, replicas: int = 1
) -> dict[str, Any]:
    """A Deployment as the JSON a user writes, for tests that edit it or send it raw."""
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def as_deployment(body: dict[str, Any]) -> client.V1Deployment:
    # The client's validate_call does this same conversion when handed a dict.
    return client.V1Deployment.model_validate(body)


def deployment(
    name: str, *, image: str = "nginx:1.25", labels: dict[str, str] | None = None, replicas: int = 1
) -> client.V1Deployment:
    return as_deployment(manifest(name, image=image, labels=labels, replicas=replicas))


def lease(name: str, holder: str, *, labels: dict[str, str] | None = None) -> client.V1Lease:
    return client.V1Lease.model_validate(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "labels": labels},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
        }
    )


def raw(
    sandbox: SandboxHandle,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    content_type: str = "application/json",
) -> tuple[int, dict[str, Any]]:
    """One HTTP request outside the client, for shapes the client cannot send."""
    request = urllib.request.Request(
        sandbox.url + path,
        data=body or None,
        method=method,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {sandbox.token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def status_of(error: ApiException) -> dict[str, Any]:
    assert error.body is not None, f"{error.status} without a Status body"
    body: dict[str, Any] = json.loads(error.body)
    return body


def name_of(metadata: client.V1ObjectMeta | None) -> str:
    """The name of an object the apiserver returned, which always has one."""
    assert metadata is not None and metadata.name, f"returned object without a name: {metadata}"
    return metadata.name


def test_create_sets_apiserver_bookkeeping(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    created = apps.create_namespaced_deployment("default", deployment("web")).metadata
    assert created is not None
    assert created.uid
    assert created.creation_timestamp is not None
    assert created.generation == 1
    assert created.resource_version is not None
    first_rv = int(created.resource_version)
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}})
    again = apps.read_namespaced_deployment("web", "default").metadata
    assert again is not None and again.resource_version is not None
    assert int(again.resource_version) > first_rv
    assert again.generation == 2  # spec changed
    assert again.uid == created.uid


def test_list_with_equality_and_set_based_label_selectors(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    for name, labels in [
        ("a", {"tier": "web", "env": "prod"}),
        ("b", {"tier": "web", "env": "dev"}),
        ("c", {"tier": "db"}),
    ]:
        apps.create_namespaced_deployment("default", deployment(name, labels=labels))

    def names(**kwargs: Any) -> list[str]:
        found = apps.list_namespaced_deployment("default", **kwargs).items
        return sorted(name_of(d.metadata) for d in found)

    assert names(label_selector="tier=web") == ["a", "b"]
    assert names(label_selector="tier=web,env!=prod") == ["b"]
    assert names(label_selector="env in (prod,dev)") == ["a", "b"]
    assert names(label_selector="tier notin (web)") == ["c"]
    assert names(label_selector="!env") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.namespace=default,metadata.name!=a") == ["b", "c"]


def test_unsupported_field_selector_is_a_bad_request(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    with pytest.raises(ApiException) as caught:
        apps.list_namespaced_deployment("default", field_selector="spec.paused=true")
    assert caught.value.status == 400
    assert "field label not supported: spec.paused" in status_of(caught.value)["message"]


def test_limit_and_continue_page_through_a_list(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    for name in ["d1", "d2", "d3", "d4", "d5"]:
        apps.create_namespaced_deployment("default", deployment(name))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = apps.list_namespaced_deployment("default", limit=2, _continue=token)
        pages += 1
        seen.extend(name_of(d.metadata) for d in page.items)
        assert page.metadata is not None
        token = page.metadata.var_continue
        if not token:
            break
    assert seen == ["d1", "d2", "d3", "d4", "d5"]
    assert pages == 3


def test_watch_streams_changes_after_a_resource_version(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    apps.create_namespaced_deployment("default", deployment("web"))
    listed = apps.list_namespaced_deployment("default").metadata
    assert listed is not None and listed.resource_version
    start = listed.resource_version
    apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "1"}}})
    apps.delete_namespaced_deployment("web", "default")
    events = []
    for event in watch.Watch().stream(
        apps.list_namespaced_deployment,
        "default",
        resource_version=start,
        field_selector="metadata.name=web",
        timeout_seconds=5,
    ):
        events.append((event["type"], event["object"].metadata.labels.get("x")))
        if event["type"] == "DELETED":
            break
    assert events[0] == ("MODIFIED", "1")
    assert events[-1][0] == "DELETED"


def test_watch_without_resource_version_starts_with_what_exists(sandbox: SandboxHandle) -> None:
    core = client.CoordinationV1Api(sandbox.api_client())
    core.create_namespaced_lease("default", lease("one", "a"))
    stream = watch.Watch().stream(core.list_namespaced_lease, "default", timeout_seconds=1)
    first = next(iter(stream))
    assert first["type"] == "ADDED"
    assert first["object"].metadata.name == "one"


def test_replace_with_stale_resource_version_is_409_conflict(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    apps.create_namespaced_deployment("default", deployment("web"))
    stale = apps.read_namespaced_deployment("web", "default")
    fresh = apps.read_namespaced_deployment("web", "default")
    fresh.spec.replicas = 2
    apps.replace_namespaced_deployment("web", "default", fresh)
    stale.spec.replicas = 5
    with pytest.raises(ApiException) as caught:
        apps.replace_namespaced_deployment("web", "default", stale)
    # apimachinery/pkg/api/errors: NewConflict -> 409, reason Conflict
    assert caught.value.status == 409
    body = status_of(caught.value)
    assert body["reason"] == "Conflict"
    assert body["message"].startswith('Operation cannot be fulfilled on deployments.apps "web"')
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 2


def test_json_patch_whose_test_fails_is_422_invalid(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    apps.create_namespaced_deployment("default", deployment("web", image="nginx:1.25"))
    patch: list[dict[str, Any]] = [
        {"op": "test", "path": "/spec/template/spec/containers/0/image", "value": "nginx:9"},
        {"op": "replace", "path": "/spec/replicas", "value": 7},
    ]
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("web", "default", patch)  # list -> json-patch+json
    # apiserver/pkg/endpoints/handlers/patch.go, jsonPatcher.applyJSPatch: a patch that fails
    # to apply -> NewGenericServerResponse(http.StatusUnprocessableEntity, ...), i.e. 422
    # with reason Invalid; the patch is all-or-nothing, so replicas is unchanged.
    assert caught.value.status == 422
    assert status_of(caught.value)["reason"] == "Invalid"
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 1


def test_json_patch_whose_test_passes_applies(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    apps.create_namespaced_deployment("default", deployment("web", image="nginx:1.25"))
    patch: list[dict[str, Any]] = [
        {"op": "test", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.25"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.26"},
    ]
    patched = apps.patch_namespaced_deployment("web", "default", patch)
    assert patched.spec is not None and patched.spec.template.spec is not None
    assert patched.spec.template.spec.containers[0].image == "nginx:1.26"


def test_merge_patch_merges_maps_and_null_deletes(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    body = manifest("web")
    body["metadata"]["annotations"] = {"keep": "1", "drop": "2"}
    apps.create_namespaced_deployment("default", as_deployment(body))
    apps.patch_namespaced_deployment(
        "web",
        "default",
        {"metadata": {"annotations": {"drop": None, "new": "3"}}},
        _content_type="application/merge-patch+json",
    )
    metadata = apps.read_namespaced_deployment("web", "default").metadata
    assert metadata is not None and metadata.annotations is not None
    annotations = metadata.annotations
    assert annotations["keep"] == "1"
    assert annotations["new"] == "3"
    assert "drop" not in annotations


def test_patch_carrying_a_stale_resource_version_is_a_conflict(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    created = apps.create_namespaced_deployment("default", deployment("web")).metadata
    assert created is not None and created.resource_version
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 2}})
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(
            "web",
            "default",
            {
                "metadata": {"resourceVersion": created.resource_version},
                "spec": {"replicas": 3},
            },
        )
    assert caught.value.status == 409


def test_strategic_merge_patch_merges_containers_by_name(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    body = manifest("web")
    body["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox:1"})
    apps.create_namespaced_deployment("default", as_deployment(body))
    # The shape `kubectl set image deployment/web app=nginx:1.26` sends.
    apps.patch_namespaced_deployment(
        "web",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}}},
    )
    spec = apps.read_namespaced_deployment("web", "default").spec
    assert spec is not None and spec.template.spec is not None
    containers = spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("app", "nginx:1.26"), ("side", "busybox:1")]


def test_errors_are_status_objects_with_real_codes(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    with pytest.raises(ApiException) as missing:
        apps.read_namespaced_deployment("nope", "default")
    assert missing.value.status == 404
    assert status_of(missing.value)["reason"] == "NotFound"
    assert status_of(missing.value)["message"] == 'deployments.apps "nope" not found'
    assert status_of(missing.value)["kind"] == "Status"

    apps.create_namespaced_deployment("default", deployment("web"))
    with pytest.raises(ApiException) as twice:
        apps.create_namespaced_deployment("default", deployment("web"))
    assert (twice.value.status, status_of(twice.value)["reason"]) == (409, "AlreadyExists")

    bad = manifest("bad")
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as invalid:
        apps.create_namespaced_deployment("default", as_deployment(bad))
    assert (invalid.value.status, status_of(invalid.value)["reason"]) == (422, "Invalid")
    assert "selector` does not match template `labels`" in status_of(invalid.value)["message"]

    path = "/apis/apps/v1/namespaces/default/deployments"
    code, answer = raw(sandbox, "PATCH", f"{path}/web", body=b"{}", content_type="text/plain")
    assert (code, answer["reason"]) == (415, "UnsupportedMediaType")
    code, answer = raw(sandbox, "POST", f"{path}/web", body=b"{}")
    assert (code, answer["reason"]) == (405, "MethodNotAllowed")
    code, answer = raw(sandbox, "GET", f"{path}?labelSelector=a+in+%28b")
    assert (code, answer["reason"]) == (400, "BadRequest")


def test_create_in_a_missing_namespace_is_not_found(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("ghost", deployment("web"))
    assert caught.value.status == 404
    assert status_of(caught.value)["message"] == 'namespaces "ghost" not found'


def test_lease_update_with_stale_resource_version_is_409(sandbox: SandboxHandle) -> None:
    leases = client.CoordinationV1Api(sandbox.api_client())
    leases.create_namespaced_lease("default", lease("leader", "pod-a"))
    mine = leases.read_namespaced_lease("leader", "default")
    theirs = leases.read_namespaced_lease("leader", "default")
    assert mine.spec is not None and theirs.spec is not None
    theirs.spec.holder_identity = "pod-b"
    leases.replace_namespaced_lease("leader", "default", theirs)
    mine.spec.holder_identity = "pod-a"
    with pytest.raises(ApiException) as caught:
        leases.replace_namespaced_lease("leader", "default", mine)
    assert caught.value.status == 409
    stored = leases.read_namespaced_lease("leader", "default").spec
    assert stored is not None and stored.holder_identity == "pod-b"


def test_events_can_be_created_and_listed_by_involved_object(sandbox: SandboxHandle) -> None:
    core = client.CoreV1Api(sandbox.api_client())
    core.create_namespaced_event(
        "default",
        client.CoreV1Event.model_validate(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": "web."},
                "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "default"},
                "reason": "RolledBack",
                "message": "rolled back to revision 2",
                "type": "Normal",
            }
        ),
    )
    events = core.list_namespaced_event(
        "default", field_selector="involvedObject.name=web,reason=RolledBack"
    ).items
    assert [e.message for e in events] == ["rolled back to revision 2"]
    assert name_of(events[0].metadata).startswith("web.")


def test_request_record_names_token_verb_and_resource(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client(token="reader-token"))
    sandbox.controls.clear_requests()
    apps.list_namespaced_deployment("default")
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("missing", "default")
    records = sandbox.controls.requests()
    assert [
        (r["token"], r["verb"], r["group"], r["resource"], r["name"], r["status"]) for r in records
    ] == [
        ("reader-token", "list", "apps", "deployments", None, 200),
        ("reader-token", "get", "apps", "deployments", "missing", 404),
    ]


def test_body_of_another_kind_is_a_bad_request(sandbox: SandboxHandle) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    code, answer = raw(
        sandbox,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        body=json.dumps(pod).encode(),
    )
    assert (code, answer["reason"]) == (400, "BadRequest")
    assert "v1 Pod" in answer["message"] and "apps/v1 Deployment" in answer["message"]


def test_watch_with_label_selector_sees_objects_enter_and_leave(sandbox: SandboxHandle) -> None:
    leases = client.CoordinationV1Api(sandbox.api_client())
    leases.create_namespaced_lease("default", lease("l", "a", labels={"x": "no"}))
    listed = leases.list_namespaced_lease("default").metadata
    assert listed is not None and listed.resource_version
    start = listed.resource_version
    leases.patch_namespaced_lease("l", "default", {"metadata": {"labels": {"x": "yes"}}})
    leases.patch_namespaced_lease("l", "default", {"spec": {"holderIdentity": "b"}})
    leases.patch_namespaced_lease("l", "default", {"metadata": {"labels": {"x": "no"}}})
    seen = []
    for event in watch.Watch().stream(
        leases.list_namespaced_lease,
        "default",
        label_selector="x=yes",
        resource_version=start,
        timeout_seconds=5,
    ):
        seen.append((event["type"], event["object"].spec.holder_identity))
        if event["type"] == "DELETED":
            break
    # apiserver storage/cacher (cacheWatcher.convertToWatchEvent): entering the selection
    # is ADDED, leaving it is DELETED with the last matching state.
    assert seen == [("ADDED", "a"), ("MODIFIED", "b"), ("DELETED", "b")]


def test_system_namespaces_cannot_be_deleted(sandbox: SandboxHandle) -> None:
    core = client.CoreV1Api(sandbox.api_client())
    with pytest.raises(ApiException) as caught:
        core.delete_namespace("default")
    # NamespaceLifecycle admission (plugin/pkg/admission/namespace/lifecycle/admission.go).
    assert (caught.value.status, status_of(caught.value)["reason"]) == (403, "Forbidden")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="scratch")))
    client.CoordinationV1Api(sandbox.api_client()).create_namespaced_lease(
        "scratch", lease("l", "a")
    )
    core.delete_namespace("scratch")
    assert (
        client.CoordinationV1Api(sandbox.api_client()).list_namespaced_lease("scratch").items == []
    )


def test_unknown_fields_are_refused_under_strict_and_dropped_with_a_warning_otherwise(
    sandbox: SandboxHandle,
) -> None:
    body = manifest("web")
    body["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    path = "/apis/apps/v1/namespaces/default/deployments"
    # apiserver handlers with fieldValidation=Strict (kubectl's default): 400 naming the field.
    code, answer = raw(
        sandbox, "POST", f"{path}?fieldValidation=Strict", body=json.dumps(body).encode()
    )
    assert (code, answer["reason"]) == (400, "BadRequest")
    assert answer["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.containers[0].imagePullPolicyy"'
    )
    # Without fieldValidation (Warn): stored without the field, and a Warning header.
    # (The official client refuses such a body itself, so this goes over plain HTTP.)
    request = urllib.request.Request(
        sandbox.url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
        assert response.headers["Warning"] == (
            '299 - "unknown field \\"spec.template.spec.containers[0].imagePullPolicyy\\""'
        )
    stored = sandbox.store.get("deployments", "default", "web")
    assert "imagePullPolicyy" not in json.dumps(stored)


def test_unknown_propagation_policy_is_refused_before_deleting(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client())
    apps.create_namespaced_deployment("default", deployment("web"))
    code, answer = raw(
        sandbox,
        "DELETE",
        "/apis/apps/v1/namespaces/default/deployments/web?propagationPolicy=Bogus",
    )
    assert (code, answer["reason"]) == (422, "Invalid")
    assert 'Unsupported value: "Bogus"' in answer["message"]
    assert name_of(apps.read_namespaced_deployment("web", "default").metadata) == "web"
    for policy, left in [("Orphan", 1), ("Background", 0)]:
        apps.create_namespaced_deployment("default", deployment(f"d-{policy.lower()}"))
        apps.delete_namespaced_deployment(
            f"d-{policy.lower()}", "default", propagation_policy=policy
        )
        remaining = apps.list_namespaced_replica_set(
            "default", label_selector=f"app=d-{policy.lower()}"
        ).items
        assert len(remaining) == left
