"""The GitOps bench on the real control plane: CRDs, owner objects, the service's own identity
(a ServiceAccount bound to the gitops overlay's rendered RBAC), and a record of its requests.

The record is the same shape as the sandbox's (tests/conftest.py RECORD_DIR_ENV), so the
RBAC-from-traffic test derives the overlay's extra permissions from what pausing really used.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes.client

from lab.controlplane import ControlPlane
from lab.receiver_harness import SERVICE_TOKEN, Harness
from sandbox.routing import parse_request
from tests.conftest import RECORD_DIR_ENV
from tests.controlplane.support import BoundOverlay, apply, kubectl, wait_until
from tests.pool_recorder import record_requests

CRDS = Path(__file__).resolve().parent / "crds"
ARGOCD_NAMESPACE = "argocd"
FLUX_NAMESPACE = "flux-system"


def install_crds(plane: ControlPlane) -> None:
    """The minimal Argo CD and Flux CRDs, established (idempotent)."""
    kubectl(plane, "apply", "-f", str(CRDS))
    for name in (
        "applications.argoproj.io",
        "applicationsets.argoproj.io",
        "kustomizations.kustomize.toolkit.fluxcd.io",
        "helmreleases.helm.toolkit.fluxcd.io",
    ):
        kubectl(plane, "wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    for namespace in (ARGOCD_NAMESPACE, FLUX_NAMESPACE):
        kubectl(plane, "create", "namespace", namespace, check=False)


class RecordingApiClient(kubernetes.client.ApiClient):
    """The official client, noting (verb, group, resource) of every request it sends and the
    answer's status (at its connection pools: tests/pool_recorder.py)."""

    def __init__(self, configuration: Any, *, token: str, record: list[dict[str, Any]]) -> None:
        super().__init__(configuration)
        self._token, self._record, self._lock = token, record, threading.Lock()
        record_requests(self, self._note)

    def _note(self, method: str, target: str, status: int | None) -> None:
        if status is None:
            return  # no answer: nothing the API server did
        split = urlsplit(target)
        info = parse_request(method, split.path + (f"?{split.query}" if split.query else ""))
        entry = {
            "token": self._token,
            "method": method,
            "path": info.path,
            "verb": info.verb,
            "group": info.group,
            "version": info.version,
            "resource": info.resource,
            "subresource": info.subresource,
            "namespace": info.namespace,
            "name": info.name,
            "status": status,
        }
        with self._lock:
            self._record.append(entry)


class _RecordedIdentity:
    """What Harness needs of a cluster handle: the test reads as admin, the service as its
    ServiceAccount through a recording client."""

    def __init__(self, plane: ControlPlane, token: str, record: list[dict[str, Any]]) -> None:
        self.plane, self.token, self.record = plane, token, record
        self.kubeconfig, self.url = plane.kubeconfig, plane.url

    def api_client(self, token: str | None = None) -> Any:
        if token == SERVICE_TOKEN:
            configuration = self.plane.api_client(self.token).configuration
            return RecordingApiClient(configuration, token=SERVICE_TOKEN, record=self.record)
        return self.plane.api_client(token)


def recorded_receiver(
    plane: ControlPlane,
    tmp_path: Path,
    *,
    token: str,
    record: list[dict[str, Any]],
    **settings: Any,
) -> Harness:
    """A receiver on the real apiserver as `token`, its requests noted in `record` (the
    defaults of tests/controlplane/support.receiver)."""
    defaults: dict[str, Any] = {
        "min_healthy_seconds": 3,
        "kubernetes": {"timeout_seconds": 10},
        "tracker": {"enabled": False},
    }
    defaults.update(settings)
    identity = _RecordedIdentity(plane, token, record)
    return Harness(identity, tmp_path, **defaults)  # type: ignore[arg-type]


def dump_record(record: list[dict[str, Any]], test: str) -> None:
    """Write the record where the RBAC-from-traffic test collects it (when it asks)."""
    where = os.environ.get(RECORD_DIR_ENV)
    if not where:
        return
    dump = {"test": test, "test_token": "admin", "entries": record}
    (Path(where) / f"controlplane-{uuid.uuid4().hex}.json").write_text(json.dumps(dump))


def application(
    name: str,
    *,
    automated: dict[str, Any] | None,
    owner_refs: list[dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
    applies: tuple[tuple[str, str], ...] = (),
    server: str = "https://kubernetes.default.svc",
    extraneous: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """An Application deploying to `server` (by default the cluster Argo CD runs in);
    `applies`: the Deployments (namespace, name) its status.resources lists as in its Git
    source, as Argo CD's controller writes it after a sync (the CRD has no status
    subresource); `extraneous`: those it lists only because they carry its tracking marker
    (not in Git: requiresPruning)."""
    spec: dict[str, Any] = {
        "project": "default",
        "source": {
            "repoURL": "https://git.example/shop.git",
            "path": "web",
            "targetRevision": "main",
        },
        "destination": {"server": server, "namespace": "shop"},
    }
    if automated is not None:
        spec["syncPolicy"] = {"automated": automated}
    metadata: dict[str, Any] = {"name": name, "namespace": ARGOCD_NAMESPACE}
    if owner_refs:
        metadata["ownerReferences"] = owner_refs
    if annotations:
        metadata["annotations"] = annotations
    resources = [
        {
            "group": "apps",
            "version": "v1",
            "kind": "Deployment",
            "namespace": ns,
            "name": name,
            "status": "OutOfSync" if extra else "Synced",
            "health": {"status": "Healthy"},
            **({"requiresPruning": True} if extra else {}),
        }
        for extra, listed in ((False, applies), (True, extraneous))
        for ns, name in listed
    ]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": metadata,
        "spec": spec,
        "status": {"sync": {"status": "Synced"}, "resources": resources},
    }


def kustomization(name: str, *, interval: str = "3s") -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": FLUX_NAMESPACE},
        "spec": {
            "interval": interval,
            "path": "./apps",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        },
    }


def helmrelease(
    name: str, namespace: str, *, interval: str = "3s", kube_config: str | None = None
) -> dict[str, Any]:
    """A HelmRelease; `kube_config`: the Secret whose kubeconfig it releases with (another
    cluster)."""
    remote = {"kubeConfig": {"secretRef": {"name": kube_config}}} if kube_config else {}
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "interval": interval,
            "chart": {
                "spec": {"chart": "web", "sourceRef": {"kind": "HelmRepository", "name": "shop"}}
            },
            "driftDetection": {"mode": "enabled"},
            **remote,
        },
    }


def released(
    plane: ControlPlane,
    namespace: str,
    name: str,
    *,
    inventory: tuple[tuple[str, str], ...] | None = None,
    history: tuple[tuple[str, str], ...] = (),
) -> None:
    """A HelmRelease's status as helm-controller writes it (the status subresource):
    `inventory` the Deployments (namespace, name) it applied (None: a helm-controller that keeps
    no inventory), `history` its releases (namespace, release name), latest first."""
    status: dict[str, Any] = {
        "history": [
            {"name": release, "namespace": ns, "version": len(history) - i, "status": "deployed"}
            for i, (ns, release) in enumerate(history)
        ]
    }
    if inventory is not None:
        status["inventory"] = {
            "entries": [{"id": f"{ns}_{n}_apps_Deployment", "v": "v1"} for ns, n in inventory]
        }
    kubectl(
        plane,
        "-n",
        namespace,
        "patch",
        "helmrelease.helm.toolkit.fluxcd.io",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def create(plane: ControlPlane, obj: dict[str, Any]) -> dict[str, Any]:
    """Apply `obj` and return it as stored (uid, resourceVersion)."""
    apply(plane, obj)
    meta = obj["metadata"]
    kind = obj["kind"].lower()
    group = obj["apiVersion"].split("/")[0]
    result = kubectl(
        plane, "-n", meta["namespace"], "get", f"{kind}.{group}", meta["name"], "-o", "json"
    )
    stored: dict[str, Any] = json.loads(result.stdout)
    return stored


def get(plane: ControlPlane, kind: str, namespace: str, name: str) -> dict[str, Any]:
    result = kubectl(plane, "-n", namespace, "get", kind, name, "-o", "json")
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def image_of(deployment: dict[str, Any]) -> str:
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


__all__ = ["BoundOverlay", "wait_until"]


def gitops_overlay(plane: ControlPlane) -> BoundOverlay:
    """The gitops overlay's RBAC, in effect once the service may patch an Application."""
    return BoundOverlay(
        plane, "gitops", probe=("patch", "applications.argoproj.io", ARGOCD_NAMESPACE)
    )
