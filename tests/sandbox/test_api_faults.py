"""Injected API faults reach clients as the real HTTP failure, and the other test controls
(interleaved writes, apply "as of", the request record) do what docs/sandbox.md says."""

from __future__ import annotations

import http.client
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox.controls import ControlError
from sandbox.testing import SandboxHandle

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1.25
"""
DEPLOYMENTS = "/apis/apps/v1/namespaces/shop/deployments"


def no_retry_client(sandbox: SandboxHandle) -> client.AppsV1Api:
    """urllib3 would silently retry an idempotent GET on a dropped connection."""
    api = sandbox.api_client()
    api.configuration.retries = False
    api.rest_client.pool_manager.connection_pool_kw["retries"] = False
    return client.AppsV1Api(api)


def raw_get(sandbox: SandboxHandle, path: str, *, timeout: float = 5) -> int:
    """A bare HTTP/1.1 GET, to see exactly what the wire does."""
    parts = urlsplit(sandbox.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {sandbox.token}"})
        return connection.getresponse().status
    finally:
        connection.close()


def metadata_of(obj: client.V1ReplicaSet | client.V1Pod) -> client.V1ObjectMeta:
    assert obj.metadata is not None, f"object without metadata: {obj}"
    return obj.metadata


def revision_of(replica_set: client.V1ReplicaSet) -> str:
    """The revision annotation the Deployment controller stamps on every ReplicaSet it owns."""
    annotations = metadata_of(replica_set).annotations
    assert annotations is not None, f"ReplicaSet without annotations: {replica_set}"
    return annotations["deployment.kubernetes.io/revision"]


def test_injected_500_is_an_internal_error_status_then_service_resumes(
    sandbox: SandboxHandle,
) -> None:
    sandbox.controls.apply(DEPLOYMENT)
    apps = client.AppsV1Api(sandbox.api_client())
    sandbox.controls.fault(method="GET", path=f"^{DEPLOYMENTS}/web$", status=500, count=1)
    with pytest.raises(ApiException) as caught:
        apps.read_namespaced_deployment("web", "shop")
    assert caught.value.status == 500
    assert caught.value.body is not None
    assert '"reason":"InternalError"' in caught.value.body
    metadata = apps.read_namespaced_deployment("web", "shop").metadata
    assert metadata is not None and metadata.name == "web"


def test_injected_fault_applies_only_to_matching_method_and_path(sandbox: SandboxHandle) -> None:
    sandbox.controls.apply(DEPLOYMENT)
    apps = client.AppsV1Api(sandbox.api_client())
    sandbox.controls.fault(method="PATCH", path=f"{DEPLOYMENTS}/web", status=503, count=2)
    assert apps.read_namespaced_deployment("web", "shop")  # GET: not faulted
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            apps.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": 2}})
        assert caught.value.status == 503
    assert apps.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": 2}})


def test_injected_delay_slows_the_answer_and_trips_a_client_timeout(
    sandbox: SandboxHandle,
) -> None:
    sandbox.controls.apply(DEPLOYMENT)
    apps = client.AppsV1Api(sandbox.api_client())
    sandbox.controls.fault(method="GET", path=f"{DEPLOYMENTS}/web", action="delay", delay=0.4)
    started = time.monotonic()
    apps.read_namespaced_deployment("web", "shop")
    assert time.monotonic() - started >= 0.4
    sandbox.controls.fault(method="GET", path=f"{DEPLOYMENTS}/web", action="delay", delay=1.0)
    with pytest.raises(urllib3.exceptions.HTTPError):
        no_retry_client(sandbox).read_namespaced_deployment("web", "shop", _request_timeout=0.2)


def test_dropped_connection_reaches_the_client_as_a_connection_failure(
    sandbox: SandboxHandle,
) -> None:
    sandbox.controls.apply(DEPLOYMENT)
    sandbox.controls.fault(method="GET", path=f"{DEPLOYMENTS}/web", action="drop", count=2)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        raw_get(sandbox, f"{DEPLOYMENTS}/web")
    with pytest.raises(urllib3.exceptions.HTTPError):
        no_retry_client(sandbox).read_namespaced_deployment("web", "shop")
    assert raw_get(sandbox, f"{DEPLOYMENTS}/web") == 200


def test_hang_waits_then_drops(sandbox: SandboxHandle) -> None:
    sandbox.controls.apply(DEPLOYMENT)
    sandbox.controls.fault(method="GET", path="/web$", action="hang", delay=0.3)
    started = time.monotonic()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        raw_get(sandbox, f"{DEPLOYMENTS}/web")
    assert time.monotonic() - started >= 0.3


def test_clear_faults_removes_pending_faults(sandbox: SandboxHandle) -> None:
    sandbox.controls.apply(DEPLOYMENT)
    sandbox.controls.fault(method="*", path="deployments", status=500, count=5)
    sandbox.controls.clear_faults()
    assert raw_get(sandbox, f"{DEPLOYMENTS}/web") == 200


def test_bad_fault_request_is_refused_with_the_reason(sandbox: SandboxHandle) -> None:
    with pytest.raises(ControlError, match="fault action must be one of"):
        sandbox.controls.fault(method="GET", path="x", action="explode")


def test_interleaved_write_makes_a_stale_replace_conflict(sandbox: SandboxHandle) -> None:
    sandbox.controls.apply(DEPLOYMENT)
    apps = client.AppsV1Api(sandbox.api_client())
    ours = apps.read_namespaced_deployment("web", "shop")
    sandbox.controls.interleave(
        method="PUT",
        path=f"{DEPLOYMENTS}/web$",
        resource="deployments",
        namespace="shop",
        name="web",
        merge_patch={"metadata": {"annotations": {"human": "was-here"}}},
    )
    ours.spec.replicas = 4
    with pytest.raises(ApiException) as caught:
        apps.replace_namespaced_deployment("web", "shop", ours)
    assert caught.value.status == 409
    now = apps.read_namespaced_deployment("web", "shop")
    assert now.metadata is not None and now.metadata.annotations is not None
    assert now.metadata.annotations["human"] == "was-here"
    assert now.spec.replicas == 1


def test_apply_creates_namespace_and_replaces_without_precondition(
    sandbox: SandboxHandle,
) -> None:
    first = sandbox.controls.apply(DEPLOYMENT)
    assert first[0]["metadata"]["namespace"] == "shop"
    core = client.CoreV1Api(sandbox.api_client())
    namespace = core.read_namespace("shop").status
    assert namespace is not None and namespace.phase == "Active"
    second = sandbox.controls.apply(DEPLOYMENT.replace("nginx:1.25", "nginx:1.26"))
    assert second[0]["metadata"]["uid"] == first[0]["metadata"]["uid"]
    image = second[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "nginx:1.26"
    assert second[0]["metadata"]["generation"] == 2


def test_apply_as_of_stamps_the_past_time(sandbox: SandboxHandle) -> None:
    two_hours_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    stored = sandbox.controls.apply(DEPLOYMENT, as_of=two_hours_ago)
    assert stored[0]["metadata"]["creationTimestamp"] == two_hours_ago.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def test_apply_of_an_unserved_kind_names_the_document(sandbox: SandboxHandle) -> None:
    with pytest.raises(ControlError, match="document 1: the sandbox does not serve v1/ConfigMap"):
        sandbox.controls.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})


def test_faulted_and_dropped_requests_are_recorded_with_their_outcome(
    sandbox: SandboxHandle,
) -> None:
    sandbox.controls.apply(DEPLOYMENT)
    sandbox.controls.clear_requests()
    sandbox.controls.fault(method="GET", path=f"{DEPLOYMENTS}/web", status=500)
    assert raw_get(sandbox, f"{DEPLOYMENTS}/web") == 500
    sandbox.controls.fault(method="GET", path=f"{DEPLOYMENTS}/web", action="drop")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        raw_get(sandbox, f"{DEPLOYMENTS}/web")
    records: list[dict[str, Any]] = sandbox.controls.requests()
    assert [(r["verb"], r["status"], r["token"]) for r in records] == [
        ("get", 500, sandbox.token),
        ("get", 0, sandbox.token),
    ]


def test_apply_as_of_builds_a_revision_history_with_past_times(sandbox: SandboxHandle) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    two_hours_ago, three_minutes_ago = now - timedelta(hours=2), now - timedelta(minutes=3)
    sandbox.controls.apply(DEPLOYMENT, as_of=two_hours_ago)
    sandbox.controls.apply(DEPLOYMENT.replace("nginx:1.25", "nginx:1.26"), as_of=three_minutes_ago)
    apps = client.AppsV1Api(sandbox.api_client())
    by_revision = {
        revision_of(rs): metadata_of(rs) for rs in apps.list_namespaced_replica_set("shop").items
    }
    assert by_revision["1"].creation_timestamp == two_hours_ago
    assert by_revision["2"].creation_timestamp == three_minutes_ago
    pods = client.CoreV1Api(sandbox.api_client()).list_namespaced_pod("shop").items
    assert [metadata_of(pod).creation_timestamp for pod in pods] == [three_minutes_ago]


def test_injected_429_carries_retry_after(sandbox: SandboxHandle) -> None:
    sandbox.controls.apply(DEPLOYMENT)
    sandbox.controls.fault(method="GET", path=f"{DEPLOYMENTS}/web", status=429)
    # (urllib3's default retries would wait the Retry-After and try again on their own.)
    with pytest.raises(ApiException) as caught:
        no_retry_client(sandbox).read_namespaced_deployment("web", "shop")
    assert caught.value.status == 429
    assert caught.value.headers is not None and caught.value.body is not None
    assert caught.value.headers["Retry-After"] == "1"
    assert '"reason":"TooManyRequests"' in caught.value.body
