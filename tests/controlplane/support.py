"""Helpers for tests on the real control plane: kubectl, waiting, Deployments, the receiver.

The receiver is lab.receiver_harness.Harness, the one the sandbox suites drive, pointed at the
real apiserver: `receiver(controlplane, tmp_path, token=...)` gives it the identity the
service should have (a ServiceAccount token, or the admin token where RBAC is not the point).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lab.controlplane import ControlPlane
from lab.receiver_harness import REV, SERVICE_TOKEN, Harness
from sandbox.pods import FAULT_ANNOTATION
from tests.binaries import require_binary
from tests.deploy.render import DEPLOY, config_of, render

T = TypeVar("T")
Obj = dict[str, Any]


def kubectl(
    plane: ControlPlane,
    *args: str,
    kubeconfig: Path | None = None,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """Run the real kubectl against the control plane (admin unless `kubeconfig`)."""
    binary = require_binary("kubectl")
    result = subprocess.run(
        [
            binary,
            "--kubeconfig",
            str(kubeconfig or plane.kubeconfig),
            "--cache-dir",
            str(plane.workdir / "kubectl-cache"),
            "--request-timeout=30s",
            *args,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result


_PATHS = {
    "deployment": "/apis/apps/v1/namespaces/{}/deployments",
    "rs": "/apis/apps/v1/namespaces/{}/replicasets",
    "replicasets": "/apis/apps/v1/namespaces/{}/replicasets",
    "pods": "/api/v1/namespaces/{}/pods",
    "lease": "/apis/coordination.k8s.io/v1/namespaces/{}/leases",
}
_CLIENTS: dict[int, Any] = {}


def get_json(plane: ControlPlane, flag: str, namespace: str, resource: str, name: str = "") -> Obj:
    """`kubectl get -n NS RESOURCE [NAME] -o json`, read as admin through the Python client:
    tests poll with it, and a kubectl process per poll is costly on two shared cores."""
    assert flag == "-n", flag
    api = _CLIENTS.setdefault(id(plane), plane.api_client())
    path = _PATHS[resource].format(namespace) + (f"/{name}" if name else "")
    params = api.param_serialize(
        method="GET",
        resource_path=path,
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*params, _request_timeout=30)
    body = response.read()
    assert response.status == 200, f"GET {path}: {response.status} {body[:300]!r}"
    data: Obj = json.loads(body)
    return data


def wait_until(
    what: str, probe: Callable[[], T | None], *, timeout: float = 90, interval: float = 0.25
) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def deployment_manifest(
    name: str,
    namespace: str,
    image: str,
    *,
    replicas: int = 2,
    fault: str | None = None,
    max_surge: int | str = "25%",
    max_unavailable: int | str = "25%",
    min_ready_seconds: int = 0,
    progress_deadline_seconds: int = 600,
    readiness_delay: int | None = None,
    annotations: dict[str, str] | None = None,
) -> Obj:
    """A Deployment like the sandbox suites' (container `app`, label app=NAME), opted in."""
    pod_annotations = {FAULT_ANNOTATION: fault} if fault else {}
    container: Obj = {"name": "app", "image": image, "ports": [{"containerPort": 8080}]}
    if readiness_delay is not None:
        container["readinessProbe"] = {
            "httpGet": {"path": "/ready", "port": 8080},
            "initialDelaySeconds": readiness_delay,
        }
    template: Obj = {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}
    if pod_annotations:
        template["metadata"]["annotations"] = pod_annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {"auto-rollback/enabled": "true", **(annotations or {})},
        },
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "minReadySeconds": min_ready_seconds,
            "progressDeadlineSeconds": progress_deadline_seconds,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable},
            },
            "selector": {"matchLabels": {"app": name}},
            "template": template,
        },
    }


def apply(plane: ControlPlane, *objects: Obj) -> None:
    text = yaml.safe_dump_all(list(objects))
    kubectl(plane, "apply", "-f", "-", stdin=text)


def set_template(plane: ControlPlane, namespace: str, name: str, image: str, fault: str | None):
    """A new revision as a human makes one: image and fault annotation in one patch."""
    patch = {
        "spec": {
            "template": {
                "metadata": {"annotations": {FAULT_ANNOTATION: fault}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            }
        }
    }
    kubectl(plane, "-n", namespace, "patch", "deployment", name, "-p", json.dumps(patch))


def rollout_status(plane: ControlPlane, namespace: str, name: str, timeout: int = 120) -> None:
    kubectl(
        plane,
        "-n",
        namespace,
        "rollout",
        "status",
        f"deployment/{name}",
        f"--timeout={timeout}s",
        timeout=timeout + 30,
    )


def replicasets(plane: ControlPlane, namespace: str, name: str) -> list[Obj]:
    """The Deployment's ReplicaSets ordered by revision number."""
    items = get_json(plane, "-n", namespace, "replicasets")["items"]
    owned = [
        rs
        for rs in items
        if any(r.get("name") == name for r in rs["metadata"].get("ownerReferences") or [])
    ]
    return sorted(owned, key=lambda rs: int(rs["metadata"]["annotations"][REV]))


def pods_of(plane: ControlPlane, namespace: str, replicaset: str) -> list[Obj]:
    items = get_json(plane, "-n", namespace, "pods")["items"]
    return [
        p
        for p in items
        if any(r.get("name") == replicaset for r in p["metadata"].get("ownerReferences") or [])
        and not p["metadata"].get("deletionTimestamp")
    ]


def condition(deployment: Obj, kind: str) -> Obj:
    for item in deployment.get("status", {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return {}


def settled(plane: ControlPlane, namespace: str, name: str) -> Obj | None:
    """The Deployment once the controller has observed its latest generation, else None."""
    deployment = get_json(plane, "-n", namespace, "deployment", name)
    status = deployment.get("status") or {}
    if status.get("observedGeneration") != deployment["metadata"]["generation"]:
        return None
    return deployment


class _Identity:
    """What Harness needs of a cluster handle, on the real apiserver: the test reads as admin,
    the service as `token`."""

    def __init__(self, plane: ControlPlane, token: str) -> None:
        self.plane = plane
        self.token = token
        self.kubeconfig = plane.kubeconfig
        self.url = plane.url

    def api_client(self, token: str | None = None) -> Any:
        if token == SERVICE_TOKEN:
            return self.plane.api_client(self.token)
        return self.plane.api_client(token)


def receiver(plane: ControlPlane, tmp_path: Path, *, token: str | None = None, **settings: Any):
    """A receiver (service + app) on the real apiserver, authenticated as `token` (admin)."""
    defaults: dict[str, Any] = {
        "min_healthy_seconds": 3,
        "kubernetes": {"timeout_seconds": 10},
        "tracker": {"enabled": False},
    }
    defaults.update(settings)
    identity = _Identity(plane, token or plane.token)
    return Harness(identity, tmp_path, **defaults)  # type: ignore[arg-type]


def alert_now(harness: Harness, *, trigger: str = "restart_rate", **labels: str) -> dict[str, Any]:
    """One alert that started just now for `labels` (namespace, deployment, replicaset or pod),
    delivered: the decision."""
    [decision] = harness.post_alerts(
        harness.alert(started_ago=timedelta(seconds=0), trigger=trigger, **labels)
    )
    return decision


def can_i(plane: ControlPlane, account: str, verb: str, resource: str, *extra: str) -> bool:
    """`kubectl auth can-i VERB RESOURCE EXTRA... --as ACCOUNT`: the apiserver's own answer."""
    answer = kubectl(plane, "auth", "can-i", verb, resource, "--as", account, *extra, check=False)
    return answer.stdout.strip() == "yes"


SERVICE_ACCOUNT = "system:serviceaccount:rollback-webhook:rollback-webhook"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


class BoundOverlay:
    """An overlay's rendered RBAC applied to the control plane, with a token for its
    ServiceAccount: the service then meets the apiserver's own authorizer (a missing grant is
    a real 403). `probe` (verb, resource, namespace) is a grant the overlay gives: entered once
    the apiserver allows it, left once it refuses it; `namespaces` are created first."""

    def __init__(
        self,
        plane: ControlPlane,
        name: str,
        *,
        probe: tuple[str, str, str],
        namespaces: tuple[str, ...] = (),
    ) -> None:
        self.plane, self.name, self.probe = plane, name, probe
        self.namespaces = ("rollback-webhook", *namespaces)
        self.objects = render(DEPLOY / "overlays" / name)
        self.rbac = [o for o in self.objects if o["kind"] in RBAC_KINDS]
        self.token = ""

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The overlay's config.yaml as receiver settings (paths, Prometheus and tracker local)."""
        config = config_of(self.objects)
        ledger = config.get("circuit_ledger")
        if ledger and ledger.get("mode") == "auto":
            # In the pod, "auto" is on with a SQLite audit; this receiver runs outside a pod.
            backend = config.get("audit", {}).get("backend", "sqlite")
            ledger["mode"] = "on" if backend == "sqlite" else "off"
        if ledger and ledger["mode"] == "on":
            # The control plane serves the whole session: without this, every test's rollbacks
            # would count against the next test's max_rollbacks, as a real fleet's do.
            kubectl(
                self.plane,
                "-n",
                ledger["namespace"],
                "delete",
                "lease",
                ledger["name"],
                "--ignore-not-found",
            )
        for key in ("auth", "audit", "kubernetes", "prometheus"):
            config.pop(key, None)
        config["tracker"] = {**config.get("tracker", {}), "enabled": False}
        config.update(overrides)
        return config

    def can(self, verb: str, resource: str, namespace: str) -> bool:
        return can_i(self.plane, SERVICE_ACCOUNT, verb, resource, "-n", namespace)

    def _active(self, namespace: str) -> bool:
        """Whether the namespace is Active; made again when it is gone."""
        phase = kubectl(
            self.plane, "get", "namespace", namespace, "-o", "jsonpath={.status.phase}", check=False
        )
        if phase.returncode != 0:
            kubectl(self.plane, "create", "namespace", namespace, check=False)
            return False
        return phase.stdout.strip() == "Active"

    def __enter__(self) -> BoundOverlay:
        for namespace in self.namespaces:
            kubectl(self.plane, "create", "namespace", namespace, check=False)
            # Still terminating after a test deleted it (--wait=false): no new content until it
            # is gone and made again.
            wait_until(f"namespace {namespace} to be active", partial(self._active, namespace))
        apply(self.plane, *self.rbac)
        self.token = kubectl(
            self.plane, "-n", "rollback-webhook", "create", "token", "rollback-webhook"
        ).stdout.strip()
        wait_until("the RBAC to take effect", lambda: self.can(*self.probe))
        return self

    def __exit__(self, *_: object) -> None:
        text = yaml.safe_dump_all(self.rbac)
        kubectl(self.plane, "delete", "--ignore-not-found", "-f", "-", stdin=text, check=False)
        wait_until("the RBAC to be gone", lambda: not self.can(*self.probe))
