"""Helpers for the tracker tests: an injected clock and small cluster readers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from lab.receiver_harness import Harness
from sandbox.testing import SandboxHandle
from webhook.kube import Cluster
from webhook.tracker import HealthTracker

HEALTHY_SINCE = "auto-rollback/healthy-since"
# The tracker's Lease, where the default settings (tracker.lease_namespace) put it.
LEASE_NAMESPACE = "rollback-webhook"
LEASE_NAME = "rollback-webhook-leader"


class FakeClock:
    """A settable clock, so minutes of health pass without sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


def tracker_for(harness: Harness, clock: Callable[[], datetime], **kwargs: Any) -> HealthTracker:
    """A tracker sharing the receiver's cluster, settings and audit, on the injected clock."""
    service = harness.service
    return HealthTracker(service.cluster, service.settings, service.audit, clock, **kwargs)


def rs_annotations(harness: Harness, name: str, namespace: str = "shop") -> dict[str, str]:
    """The ReplicaSet's annotations as the API server has them now."""
    rs = harness.read("GET", f"/apis/apps/v1/namespaces/{namespace}/replicasets/{name}")
    annotations: dict[str, str] = rs["metadata"].get("annotations") or {}
    return annotations


def stamp_of(harness: Harness, name: str, namespace: str = "shop") -> str | None:
    return rs_annotations(harness, name, namespace).get(HEALTHY_SINCE)


def stamp_writes(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PATCHes of ReplicaSets in the sandbox's request record (the tracker's only writes)."""
    return [r for r in requests if r["resource"] == "replicasets" and r["verb"] == "patch"]


def create_lease_namespace(sandbox: SandboxHandle) -> None:
    """Create the namespace the tracker's Lease lives in (the sandbox starts without it)."""
    sandbox.controls.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NAMESPACE}}
    )


def lease_spec(cluster: Cluster) -> dict[str, Any]:
    """The tracker Lease's spec as `cluster` reads it now."""
    spec: dict[str, Any] = cluster.get_lease(LEASE_NAMESPACE, LEASE_NAME)["spec"]
    return spec


def wait_for(condition: Callable[[], Any], *, seconds: float, what: str = "") -> Any:
    """Poll `condition` every 0.1 s until it returns something truthy, and return that."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds}s: {what or condition}")
