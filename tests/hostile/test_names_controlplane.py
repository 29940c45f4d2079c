"""On the real control plane (kube-apiserver, kube-controller-manager, etcd): hostile names in
every workload label are refused before any request. The service's own HTTP requests are
recorded at its client's connection pool: there are none, and an opted-in Deployment with a
bad new revision in kube-system keeps its template, its resourceVersion and its Events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.controlplane import ControlPlane
from lab.receiver_harness import SERVICE_TOKEN, Harness, template_images
from tests.controlplane.support import (
    apply,
    deployment_manifest,
    get_json,
    kubectl,
    rollout_status,
    set_template,
)
from tests.hostile.test_names import HOSTILE, LABELS, labels_with
from tests.pool_recorder import record_requests

pytestmark = pytest.mark.controlplane


class RecordingIdentity:
    """The cluster handle Harness needs, on the real apiserver; every HTTP request the service's
    client sends (method, URL) is kept in `requests`. The test's own reads are not recorded."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.kubeconfig = plane.kubeconfig
        self.url = plane.url
        self.requests: list[tuple[str, str]] = []

    def api_client(self, token: str | None = None) -> Any:
        if token != SERVICE_TOKEN:
            return self.plane.api_client(token)
        client = self.plane.api_client(self.plane.token)
        # Every request sent, answered or not (tests/pool_recorder.py).
        record_requests(client, lambda method, url, _status: self.requests.append((method, url)))
        return client


@pytest.fixture
def in_kube_system(controlplane: ControlPlane) -> Iterator[str]:
    """An opted-in Deployment in kube-system whose second revision is the newest."""
    name = "dns-" + uuid.uuid4().hex[:6]
    apply(controlplane, deployment_manifest(name, "kube-system", "web:1", replicas=1))
    rollout_status(controlplane, "kube-system", name)
    set_template(controlplane, "kube-system", name, "web:2", None)
    rollout_status(controlplane, "kube-system", name)
    yield name
    kubectl(controlplane, "-n", "kube-system", "delete", "deployment", name, check=False)


def test_hostile_names_never_reach_the_real_apiserver(
    controlplane: ControlPlane,
    in_kube_system: str,
    tmp_path: Path,
) -> None:
    identity = RecordingIdentity(controlplane)
    harness = Harness(identity, tmp_path, tracker={"enabled": False})  # type: ignore[arg-type]
    before = get_json(controlplane, "-n", "kube-system", "deployment", in_kube_system)
    alerts = [
        harness.alert(**labels_with(label, value))  # type: ignore[arg-type]
        for label in LABELS
        for value in HOSTILE
    ]
    alerts.append(harness.alert(namespace="kube-system/..", deployment=in_kube_system))
    alerts.append(harness.alert(namespace="default/../kube-system", deployment=in_kube_system))
    decisions = harness.post_alerts(*alerts)
    assert {d["reason"] for d in decisions} == {"invalid_labels"}
    assert len(decisions) == len(LABELS) * len(HOSTILE) + 2
    assert identity.requests == []  # not one request, read or write, left the service
    after = get_json(controlplane, "-n", "kube-system", "deployment", in_kube_system)
    assert template_images(after) == ["web:2"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    events = json.loads(
        kubectl(controlplane, "-n", "kube-system", "get", "events", "-o", "json").stdout
    )
    assert not [e for e in events["items"] if e["reason"].startswith("AutoRollback")]
    # The recorder does see the service's requests: a well-formed alert is looked up.
    [found] = harness.post_alerts(harness.alert(namespace="default", deployment="nothing-here"))
    assert found["reason"] == "deployment_not_found"
    assert any(
        "/namespaces/default/deployments/nothing-here" in url for _, url in identity.requests
    )
