"""The storm benchmark's cluster on the real control plane (`storm.py --cluster controlplane`).

kube-apiserver, kube-controller-manager and etcd v1.35.4 with the kubelet stand-in
(lab/controlplane.py), one fresh per case, or a running one lent by the caller (the CI test's
session control plane). The receiver runs as the shipped ServiceAccount with the shipped RBAC
(deploy/base), so the apiserver's authorizer judges its every request. On a lent control plane
the receiver watches only the storm's namespaces (the breaker counts every rollback in scope)
and the storm's namespaces and RBAC are deleted after.

Laying out: every namespace and Deployment is server-side applied from a thread pool (one
replica each, the sandbox's manifest otherwise), revision 1 first; once the real controller
has rolled it out and the kubelet stand-in reports its pod ready, and revision 1 has lived
longer than the receiver's min_healthy_seconds, revision 2 is applied and rolled out the same
way. The real controller writes the ReplicaSets: no age can be written as on the sandbox, so
the receiver's min_healthy_seconds is MIN_HEALTHY_SECONDS here (600 shipped) and the alerts
start after revision 2 became current.

Counting: the receiver's Kubernetes API requests are the apiserver's own count of the requests
its priority-and-fairness filter dispatched for the `service-accounts` flow schema
(apiserver_flowcontrol_dispatched_requests_total from /metrics, read as admin, before and after
the storm). Only the receiver authenticates as a ServiceAccount outside kube-system: the
controllers' ServiceAccounts match `kube-system-service-accounts`, the kubelet stand-in and this
script are system:masters (`exempt`). Deployment writes are the Deployments' generation: the
layout leaves it at 2 and only a template change (a rollback) raises it.

Checking, on the real objects after the controller has observed every write: a rolled-back
Deployment is at generation 3 and revision 3, revision 1's ReplicaSet re-adopted as revision 3
(history 1), no revision 4 anywhere, and the bad ReplicaSet carries one bad-revision mark naming
the decision that rolled it back.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml

from benchmarks.storm import Case, Observed, deployment_documents
from lab.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[1]
RBAC_FILES = (
    "namespace.yaml",
    "serviceaccount.yaml",
    "rbac-cluster.yaml",
    "rbac-leader-election.yaml",
)
SERVICE_NAMESPACE = "rollback-webhook"
SERVICE_ACCOUNT = "rollback-webhook"
FIELD_MANAGER = "storm-benchmark"
REV = "deployment.kubernetes.io/revision"
HISTORY = "deployment.kubernetes.io/revision-history"
BAD_MARK = "auto-rollback/bad-revision"
MIN_HEALTHY_SECONDS = 5
APPLY_THREADS = 8
FLOW_SCHEMA = "service-accounts"
STORM_LABEL = "storm-benchmark"
Key = tuple[str, str]
T = TypeVar("T")
Obj = dict[str, Any]

_PATHS = {
    "Namespace": "/api/v1/namespaces/{name}",
    "ServiceAccount": "/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/{name}",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/{name}",
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
}


class ControlPlaneCluster:
    """The storm's cluster on the real control plane (see the module docstring)."""

    kind = "controlplane"

    def __init__(self, workdir: Path, case: Case, *, plane: ControlPlane | None = None) -> None:
        self.owned = plane is None
        self.plane = plane or ControlPlane.start(
            workdir=workdir / "controlplane", backoff_scale=0.1
        )
        self.case = case
        self.api = self.plane.api_client()
        self.pool = ThreadPoolExecutor(APPLY_THREADS, thread_name_prefix="storm-apply")
        self.counted: dict[str, float] = {}
        self.rbac = [
            doc
            for file in RBAC_FILES
            for doc in yaml.safe_load_all((REPO / "deploy" / "base" / file).read_text())
            if doc
        ]
        try:
            self._apply_all(self.rbac)
            token = self._token()
            self.kubeconfig = self.plane.kubeconfig_for(token, "storm-receiver")
            service = self.plane.api_client(token)
            _until(
                "the shipped RBAC to let the receiver list Deployments",
                lambda: _request(service, "GET", "/apis/apps/v1/deployments?limit=1")[0] == 200,
                timeout=60,
            )
        except BaseException:
            self.stop()
            raise

    # -- the API, as admin ------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        return _request(self.api, method, path, body, **kwargs)

    def _apply(self, obj: Obj) -> None:
        meta = obj["metadata"]
        path = _PATHS[obj["kind"]].format(name=meta["name"], namespace=meta.get("namespace"))
        status, data = self._request(
            "PATCH",
            f"{path}?fieldManager={FIELD_MANAGER}&force=true",
            json.dumps(obj),
            content_type="application/apply-patch+yaml",
        )
        if status >= 300:
            raise RuntimeError(f"apply {obj['kind']} {meta['name']}: {status} {str(data)[:300]}")

    def _apply_all(self, objects: Iterable[Obj]) -> None:
        """Server-side apply every object, APPLY_THREADS at a time."""
        list(self.pool.map(self._apply, objects))

    def _token(self) -> str:
        status, data = self._request(
            "POST",
            f"/api/v1/namespaces/{SERVICE_NAMESPACE}/serviceaccounts/{SERVICE_ACCOUNT}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 7200},
            },
            content_type="application/json",
        )
        if status != 201:
            raise RuntimeError(f"TokenRequest: {status} {str(data)[:300]}")
        token: str = data["status"]["token"]
        return token

    def _list(self, path: str) -> list[Obj]:
        status, data = self._request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {str(data)[:300]}")
        items: list[Obj] = data["items"]
        return items

    def _deployments(self) -> dict[Key, Obj]:
        items = self._list(
            f"/apis/apps/v1/deployments?labelSelector={STORM_LABEL}%3D{self.case.prefix}"
        )
        return {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in items}

    def _replicasets(self) -> dict[Key, list[Obj]]:
        """The storm's ReplicaSets by owning Deployment, ordered by revision."""
        namespaces = {ns for ns, _ in self.case.targets()}
        owned: dict[Key, list[Obj]] = {}
        for rs in self._list("/apis/apps/v1/replicasets"):
            meta = rs["metadata"]
            if meta["namespace"] in namespaces and meta.get("ownerReferences"):
                key = (meta["namespace"], meta["ownerReferences"][0]["name"])
                owned.setdefault(key, []).append(rs)
        for sets in owned.values():
            sets.sort(key=lambda rs: int(rs["metadata"]["annotations"].get(REV, "0")))
        return owned

    # -- the storm's cluster ----------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Revision 1 cannot be written hours old here: it lives MIN_HEALTHY_SECONDS first. On
        a lent control plane the receiver watches only the storm's namespaces: the breaker
        counts every rollback in scope, and the other suites' would count too."""
        settings: dict[str, Any] = {"min_healthy_seconds": MIN_HEALTHY_SECONDS}
        if not self.owned:
            settings["namespaces"] = {"allow": sorted({ns for ns, _ in self.case.targets()})}
        return settings

    def lay_out(self, case: Case) -> dict[Key, str]:
        """Every Deployment with a healthy revision 1 and a bad revision 2 (one replica), rolled
        out by the real controller; returns the bad ReplicaSet's name by (namespace, name)."""
        namespaces = sorted({ns for ns, _ in case.targets()})
        self._apply_all(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces
        )
        timeout = 120 + 1.5 * case.deployments
        for image in ("1", "2"):
            documents = deployment_documents(case, image, replicas=1)
            for document in documents:
                document["metadata"]["labels"] = {STORM_LABEL: case.prefix}
            self._apply_all(documents)
            self._rolled_out(int(image), timeout=timeout)
            if image == "1":
                # Revision 1 must have lived min_healthy_seconds when revision 2 replaces it
                # (creation times have second resolution: one more second).
                newest = max(
                    _time(sets[0]["metadata"]["creationTimestamp"])
                    for sets in self._replicasets().values()
                )
                wait = (newest + timedelta(seconds=MIN_HEALTHY_SECONDS + 1)) - datetime.now(UTC)
                time.sleep(max(0.0, wait.total_seconds()))
        bad: dict[Key, str] = {}
        for key, sets in self._replicasets().items():
            for rs in sets:
                if rs["metadata"]["annotations"].get(REV) == "2":
                    bad[key] = rs["metadata"]["name"]
        assert len(bad) == case.deployments, (len(bad), case.deployments)
        return bad

    def _rolled_out(self, revision: int, *, timeout: float) -> None:
        """Until every Deployment is at `revision`, observed, with its one pod updated, ready
        and alone (the old revision's pod gone)."""

        def done() -> bool:
            found = self._deployments()
            return len(found) == self.case.deployments and all(
                _rolled(d, revision) for d in found.values()
            )

        _until(f"revision {revision} to roll out", done, timeout=timeout, interval=1.0)

    def alerts_start(self) -> datetime:
        """Now: after revision 2 became current (an earlier alert would predate the rollout)."""
        return datetime.now(UTC)

    def start_counting(self) -> None:
        self.counted = self._dispatched()

    def _dispatched(self) -> dict[str, float]:
        status, text = self._request("GET", "/metrics", raw=True)
        if status != 200:
            raise RuntimeError(f"GET /metrics: {status}")
        counts: dict[str, float] = {}
        pattern = re.compile(
            r"^apiserver_flowcontrol_(dispatched|rejected)_requests_total\{(.*)\} (\S+)$"
        )
        for line in text.splitlines():
            match = pattern.match(line)
            if match and f'flow_schema="{FLOW_SCHEMA}"' in match.group(2):
                counts[match.group(1)] = counts.get(match.group(1), 0.0) + float(match.group(3))
        return counts

    def observe(self, bad: dict[Key, str]) -> Observed:
        after = self._dispatched()
        requests = sum(after.values()) - sum(self.counted.values())

        def observed() -> dict[Key, Obj] | None:
            found = self._deployments()
            settled = all(
                (d.get("status") or {}).get("observedGeneration") == d["metadata"]["generation"]
                for d in found.values()
            )
            return found if settled else None

        final = _until(
            "the controller to observe every write",
            observed,
            timeout=120 + 0.5 * self.case.deployments,
            interval=1.0,
        )
        writes = Counter({key: d["metadata"]["generation"] - 2 for key, d in final.items()})
        return Observed(
            requests=int(requests),
            writes=+writes,
            final=final,
            replicasets=self._replicasets(),
        )

    def processes(self) -> dict[str, int]:
        """The control plane's processes by component (scripts/controlplane.sh's pids file)."""
        pids = self.plane.ca_file.parent / "pids"
        found = {}
        for line in pids.read_text().splitlines():
            name, pid = line.split()
            found[name] = int(pid)
        return found

    def stop(self) -> None:
        self.pool.shutdown(wait=True)
        if self.owned:
            self.plane.stop()
            shutil.rmtree(self.plane.workdir, ignore_errors=True)
            return
        # A lent control plane is left as found: the storm's namespaces and the RBAC go.
        namespaces = sorted({ns for ns, _ in self.case.targets()})
        for ns in namespaces:
            self._request("DELETE", f"/api/v1/namespaces/{ns}")
        for lease in ("rollback-webhook-leader", "rollback-webhook-rollbacks"):
            self._request(
                "DELETE",
                f"/apis/coordination.k8s.io/v1/namespaces/{SERVICE_NAMESPACE}/leases/{lease}",
            )
        for obj in self.rbac:
            if obj["kind"] != "Namespace":
                meta = obj["metadata"]
                self._request(
                    "DELETE",
                    _PATHS[obj["kind"]].format(name=meta["name"], namespace=meta.get("namespace")),
                )


def check_revisions(
    observed: Observed, bad: dict[Key, str], rolled: dict[Key, list[str]]
) -> list[str]:
    """The real controller's account of each rollback (see the module docstring); `rolled` is
    the rolled_back decisions' ids by Deployment."""
    failures: list[str] = []
    assert observed.replicasets is not None
    for key, sets in sorted(observed.replicasets.items()):
        numbers = [int(rs["metadata"]["annotations"].get(REV, "0")) for rs in sets]
        deployment = observed.final[key]
        revision = int(deployment["metadata"]["annotations"].get(REV, "0"))
        marks = [rs for rs in sets if BAD_MARK in (rs["metadata"].get("annotations") or {})]
        if key not in rolled:
            if revision != 2 or max(numbers) != 2:
                failures.append(f"{key}: not rolled back, yet at revision {revision} {numbers}")
            continue
        first = next((rs for rs in sets if rs["metadata"]["name"] != bad[key]), None)
        history = (first or {}).get("metadata", {}).get("annotations", {}).get(HISTORY)
        if revision != 3 or sorted(numbers) != [2, 3] or history != "1":
            failures.append(
                f"{key}: rolled back to revision {revision}, ReplicaSet revisions {numbers}, "
                f"revision 1's history {history!r} (expected 3, [2, 3], '1')"
            )
        if [rs["metadata"]["name"] for rs in marks] != [bad[key]]:
            failures.append(f"{key}: bad marks on {[rs['metadata']['name'] for rs in marks]}")
            continue
        mark = json.loads(marks[0]["metadata"]["annotations"][BAD_MARK])
        if [mark.get("audit_id")] != rolled[key]:
            failures.append(
                f"{key}: bad mark names {mark.get('audit_id')}, decisions {rolled[key]}"
            )
    return failures


def _rolled(deployment: Obj, revision: int) -> bool:
    status = deployment.get("status") or {}
    meta = deployment["metadata"]
    return (
        meta["generation"] == revision
        and status.get("observedGeneration") == revision
        and (meta.get("annotations") or {}).get(REV) == str(revision)
        and status.get("updatedReplicas") == 1
        and status.get("availableReplicas") == 1
        and status.get("replicas") == 1
    )


def _request(
    api: Any,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str | None = None,
    raw: bool = False,
) -> tuple[int, Any]:
    """(status, JSON body or text) of one request through the official client's ApiClient."""
    headers = {"Accept": "text/plain" if raw else "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    params = api.param_serialize(
        method=method,
        resource_path=path,
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*params, _request_timeout=60)
    data = response.read()
    if raw:
        return response.status, data.decode(errors="replace")
    try:
        return response.status, json.loads(data) if data else {}
    except ValueError:
        return response.status, data.decode(errors="replace")


def _until(what: str, probe: Callable[[], T | None], *, timeout: float, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
