"""The request record (RBAC verbs per token), pod behaviours through the control, start-up
speed, and the watch edge cases clients depend on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from sandbox.controls import ControlError, SandboxControls
from sandbox.server import SandboxServer
from sandbox.store import Change, Store
from sandbox.testing import SandboxHandle, api_client_for

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
        },
    },
}


def name_of(pod: client.V1Pod) -> str:
    assert pod.metadata is not None and pod.metadata.name, f"pod without a name: {pod}"
    return pod.metadata.name


def first_container(pod: client.V1Pod) -> client.V1ContainerStatus:
    """The status of the pod's only container, which a running sandbox pod always reports."""
    assert pod.status is not None and pod.status.container_statuses, f"no statuses: {pod}"
    return pod.status.container_statuses[0]


def verbs(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (r["token"], r["verb"], r["resource"], r["subresource"], r["namespace"], r["name"])
        for r in records
    ]


def test_record_uses_kubernetes_verbs_for_every_kind_of_request(sandbox: SandboxHandle) -> None:
    apps = client.AppsV1Api(sandbox.api_client(token="writer"))
    sandbox.controls.clear_requests()
    apps.create_namespaced_deployment("default", client.V1Deployment.model_validate(DEPLOYMENT))
    current = apps.read_namespaced_deployment("web", "default")
    apps.replace_namespaced_deployment("web", "default", current)
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 2}})
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    apps.read_namespaced_deployment_status("web", "default")
    for _ in watch.Watch().stream(apps.list_namespaced_deployment, "default", timeout_seconds=0):
        pass
    apps.delete_namespaced_deployment("web", "default")
    apps.delete_collection_namespaced_replica_set("default")
    assert verbs(sandbox.controls.requests()) == [
        ("writer", "create", "deployments", "", "default", None),
        ("writer", "get", "deployments", "", "default", "web"),
        ("writer", "update", "deployments", "", "default", "web"),
        ("writer", "patch", "deployments", "", "default", "web"),
        ("writer", "patch", "deployments", "scale", "default", "web"),
        ("writer", "get", "deployments", "status", "default", "web"),
        ("writer", "watch", "deployments", "", "default", None),
        ("writer", "delete", "deployments", "", "default", "web"),
        ("writer", "deletecollection", "replicasets", "", "default", None),
    ]


def test_record_keeps_requests_without_a_token_and_discovery(sandbox: SandboxHandle) -> None:
    sandbox.controls.clear_requests()
    anonymous = client.CoreV1Api(sandbox.api_client(token=""))
    anonymous.list_namespace()
    client.VersionApi(sandbox.api_client()).get_code()
    records = sandbox.controls.requests()
    assert [(r["token"], r["verb"], r["resource"], r["path"]) for r in records] == [
        (None, "list", "namespaces", "/api/v1/namespaces"),
        (sandbox.token, "get", "", "/version/"),
    ]


def test_behaviour_control_makes_a_pod_crash_loop(sandbox: SandboxHandle) -> None:
    sandbox.controls.apply(DEPLOYMENT)
    core = client.CoreV1Api(sandbox.api_client())
    pod = core.list_namespaced_pod("default", label_selector="app=web").items[0]
    sandbox.controls.set_behaviour("default", name_of(pod), fault="crashloop")
    status = first_container(core.read_namespaced_pod(name_of(pod), "default"))
    assert status.ready is False
    assert status.restart_count >= 1
    sandbox.controls.set_behaviour("default", name_of(pod), fault=None)
    assert first_container(core.read_namespaced_pod(name_of(pod), "default")).ready is True


def test_behaviour_control_names_a_missing_pod(sandbox: SandboxHandle) -> None:
    with pytest.raises(ControlError, match="404"):
        sandbox.controls.set_behaviour("default", "ghost", fault="slow")


def test_sandbox_started_answers_its_version_at_once(tmp_path: Path) -> None:
    handle = SandboxHandle.start(workdir=tmp_path)
    try:
        assert client.VersionApi(handle.api_client()).get_code().git_version == "v1.30.0"
    finally:
        handle.stop()


def test_watch_from_a_compacted_version_gets_410_expired(sandbox: SandboxHandle) -> None:
    # Fill the history past its bound with lease writes, then watch from version 1.
    from sandbox import store as store_module

    leases = client.CoordinationV1Api(sandbox.api_client())
    leases.create_namespaced_lease(
        "default", client.V1Lease(metadata=client.V1ObjectMeta(name="l"), spec=client.V1LeaseSpec())
    )
    with sandbox.store.lock:
        current = sandbox.store.get("leases", "default", "l")
        for count in range(store_module.HISTORY_LIMIT):
            # Each write changes the Lease: one that changes nothing is not written.
            current = sandbox.store.update(
                "leases", {**current, "spec": {"leaseTransitions": count + 1}}
            )
    stream = watch.Watch().stream(
        leases.list_namespaced_lease, "default", resource_version="1", timeout_seconds=2
    )
    with pytest.raises(client.ApiException) as caught:
        next(iter(stream))
    assert caught.value.status == 410


def test_pod_reads_report_restarts_that_grew_since_the_last_write() -> None:
    now = [datetime(2026, 1, 1, 12, 0, tzinfo=UTC)]
    server = SandboxServer(store=Store(clock=lambda: now[0]))
    server.start()
    try:
        controls = SandboxControls(server.url)
        controls.apply(DEPLOYMENT)
        core = client.CoreV1Api(api_client_for(server.url, None))
        name = name_of(core.list_namespaced_pod("default").items[0])
        controls.set_behaviour("default", name, fault="crashloop")
        before = core.read_namespaced_pod(name, "default")
        now[0] += timedelta(minutes=2)  # no write happens meanwhile
        after = core.read_namespaced_pod(name, "default")
        listed = core.list_namespaced_pod("default").items[0]
    finally:
        server.stop()
    assert after.metadata is not None and before.metadata is not None
    assert after.metadata.resource_version == before.metadata.resource_version
    grown = first_container(after).restart_count
    assert grown > first_container(before).restart_count
    assert first_container(listed).restart_count == grown


def test_a_failure_inside_a_write_is_a_500_internal_error(sandbox: SandboxHandle) -> None:
    def broken_hook(change: Change) -> None:
        if change.resource == "leases":
            raise KeyError("spec")

    sandbox.store.subscribe(broken_hook)
    leases = client.CoordinationV1Api(sandbox.api_client())
    with pytest.raises(client.ApiException) as caught:
        leases.create_namespaced_lease(
            "default",
            client.V1Lease(metadata=client.V1ObjectMeta(name="l"), spec=client.V1LeaseSpec()),
        )
    # As the apiserver's panic recovery answers: 500 InternalError, not a dropped connection.
    assert caught.value.status == 500
    assert caught.value.body is not None
    assert "Internal error occurred: KeyError" in caught.value.body
    assert sandbox.controls.requests()[-1]["status"] == 500
