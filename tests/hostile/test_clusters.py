"""One Alertmanager for several clusters, through the real `rollback-webhook serve` and its
configuration file: an alert whose cluster label names another cluster is skipped, and with
cluster.require_label so is one without the label; this cluster's own alert is acted on."""

from __future__ import annotations

from pathlib import Path

from lab.receiver_harness import Harness, hours, minutes, template_images
from sandbox.testing import SandboxHandle
from tests.hostile.serving import serve


def test_served_receiver_skips_other_clusters_and_unlabelled_alerts(
    sandbox: SandboxHandle, harness: Harness, tmp_path: Path
) -> None:
    _, rs2 = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    cluster = {"name": "prod-eu", "label": "cluster", "require_label": True}
    with serve(sandbox, tmp_path, cluster=cluster) as served:
        sandbox.controls.clear_requests()
        other = Harness.alert(namespace="shop", deployment="web", replicaset=rs2, cluster="prod-us")
        unlabelled = Harness.alert(namespace="shop", deployment="web", replicaset=rs2)
        status, body = served.post_alerts(Harness.payload(other, unlabelled))
        assert status == 200, body
        assert [(d["outcome"], d["reason"]) for d in body["decisions"]] == [
            ("skipped", "wrong_cluster"),
            ("skipped", "wrong_cluster"),
        ]
        assert "'prod-us'" in body["decisions"][0]["detail"]
        assert "cluster is missing" in body["decisions"][1]["detail"]
        assert sandbox.controls.requests() == []  # decided before any API call
        assert template_images(harness.deployment("shop", "web")) == ["web:2"]

        mine = Harness.alert(namespace="shop", deployment="web", replicaset=rs2, cluster="prod-eu")
        status, body = served.post_alerts(Harness.payload(mine))
        assert status == 200, body
        assert body["decisions"][0]["outcome"] == "rolled_back", body
    assert template_images(harness.deployment("shop", "web")) == ["web:1"]
