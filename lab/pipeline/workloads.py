"""The Deployments a pipeline run plays with: a healthy v1, then a v2 with a pod behaviour.

Behaviours are the sandbox's (docs/sandbox.md): the pod-template annotation
`sandbox.auto-rollback/fault` = crashloop | oomkilled | slow. v1 is applied "as of" two hours
ago, as a Deployment that has run fine for a while (and so is old enough for the receiver's
cluster-only health rule and is no new revision for the rules); v2 is applied now, in real
time, because Prometheus, Alertmanager and the receiver all run on the real clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.pods import FAULT_ANNOTATION, LATENCY_ANNOTATION, restart_count
from sandbox.testing import SandboxHandle
from webhook import contract

V1_AGE = timedelta(hours=2)
TRIGGER_FAULTS: dict[str, str] = {
    "restart_rate": "crashloop",
    "oomkilled": "oomkilled",
    "p99_latency": "slow",
}


@dataclass(frozen=True)
class Workload:
    """One Deployment of a scenario."""

    namespace: str
    name: str
    opted_in: bool = True
    replicas: int = 2

    def manifest(
        self, *, image: str, fault: str | None = None, latency_seconds: float | None = None
    ) -> dict[str, Any]:
        """The Deployment with one container running `image` and the given pod behaviour."""
        pod_annotations: dict[str, str] = {}
        if fault is not None:
            pod_annotations[FAULT_ANNOTATION] = fault
        if latency_seconds is not None:
            pod_annotations[LATENCY_ANNOTATION] = str(latency_seconds)
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.opted_in:
            metadata["annotations"] = {contract.ANNOTATION_ENABLED: "true"}
        template_meta: dict[str, Any] = {"labels": {"app": self.name}}
        if pod_annotations:
            template_meta["annotations"] = pod_annotations
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {
                "replicas": self.replicas,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": self.name}},
                "template": {
                    "metadata": template_meta,
                    "spec": {
                        "containers": [
                            {"name": "app", "image": image, "ports": [{"containerPort": 8080}]}
                        ]
                    },
                },
            },
        }

    def deploy_v1(self, sandbox: SandboxHandle, *, image: str) -> None:
        """The healthy first revision, as if rolled out V1_AGE ago."""
        sandbox.controls.apply(self.manifest(image=image), as_of=datetime.now(UTC) - V1_AGE)

    def roll_out(
        self,
        sandbox: SandboxHandle,
        *,
        image: str,
        fault: str | None = None,
        latency_seconds: float | None = None,
    ) -> float:
        """Roll out a new revision now; returns the wall-clock time (time.time()) of it."""
        started = time.time()
        sandbox.controls.apply(
            self.manifest(image=image, fault=fault, latency_seconds=latency_seconds)
        )
        return started

    # -- observation straight from the sandbox's store (no API request: nothing recorded,
    # -- no injected fault consumed) ------------------------------------------------------
    def deployment(self, sandbox: SandboxHandle) -> dict[str, Any]:
        found: dict[str, Any] = sandbox.store.get("deployments", self.namespace, self.name)
        return found

    def images(self, sandbox: SandboxHandle) -> list[str]:
        """The images of the Deployment's current pod template."""
        containers = self.deployment(sandbox)["spec"]["template"]["spec"]["containers"]
        return [str(c["image"]) for c in containers]

    def replicasets(self, sandbox: SandboxHandle) -> list[dict[str, Any]]:
        """The Deployment's ReplicaSets, oldest revision first."""
        uid = self.deployment(sandbox)["metadata"]["uid"]
        items, _ = sandbox.store.list("replicasets", self.namespace)
        owned = [
            rs
            for rs in items
            if any(ref.get("uid") == uid for ref in rs["metadata"].get("ownerReferences") or [])
        ]
        return sorted(owned, key=lambda rs: int(rs["metadata"]["annotations"][contract.REVISION]))

    def replicaset_for(self, sandbox: SandboxHandle, image: str) -> dict[str, Any]:
        """The ReplicaSet whose template runs `image`."""
        for rs in self.replicasets(sandbox):
            containers = rs["spec"]["template"]["spec"]["containers"]
            if [c["image"] for c in containers] == [image]:
                return rs
        raise LookupError(f"{self.namespace}/{self.name}: no ReplicaSet runs {image}")

    def pod_restarts(self, sandbox: SandboxHandle, replicaset: str) -> int:
        """The highest container restart count among the ReplicaSet's pods, as of now."""
        items, _ = sandbox.store.list("pods", self.namespace)
        now = sandbox.store.now()
        counts = [
            restart_count(pod, now)
            for pod in items
            if any(r.get("name") == replicaset for r in pod["metadata"].get("ownerReferences", []))
        ]
        return max(counts, default=0)


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.1,
    on_tick: Callable[[], None] | None = None,
) -> bool:
    """Poll `condition` until true or `timeout` seconds pass; returns whether it came true."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        if on_tick is not None:
            on_tick()
        time.sleep(interval)
