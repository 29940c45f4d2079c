"""`rollback_webhook_gitops_owners_paused`: Deployments whose GitOps owner the service paused and
no resume has handed back, as a worker's /metrics serves it (the RollbackWebhookGitOpsOwnerPaused
alert reads it), read from the Deployments' own pause annotations."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from lab.receiver_harness import Harness, hours, minutes
from tests.gitops.support import FLUX_KUSTOMIZATION, ONCALL_TOKEN, FullApp, deploy_owned
from webhook.gitops_metrics import NAME, PausedOwnersCollector
from webhook.inventory import deployments_in_scope
from webhook.kube import KubeError


def gauge(harness: Harness) -> float | None:
    text = harness.client.get("/metrics").get_data(as_text=True)
    found = re.search(rf"^{NAME} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_a_pausing_rollback_counts_until_resume_hands_the_owner_back(harness: Harness) -> None:
    _, v2 = deploy_owned(
        harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], FLUX_KUSTOMIZATION
    )
    assert gauge(harness) == 0.0  # owned, not paused

    [rolled] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=v2, started_ago=minutes(1))
    )
    assert rolled["outcome"] == "rolled_back"
    # A fresh collector (the served one caches its LIST for 30 s) over the same cluster.
    clock = [datetime.now(UTC)]
    collector = PausedOwnersCollector(
        deployments=lambda: deployments_in_scope(
            harness.service.cluster, harness.settings.namespaces
        ),
        clock=lambda: clock[0],
    )
    [family] = collector.collect()
    assert family.samples[0].value == 1.0

    answer = FullApp(harness).resume(
        {"namespace": "shop", "deployment": "web", "reason": "Git fixed"}, ONCALL_TOKEN
    )
    assert answer.status_code == 200, answer.get_json()
    [cached] = collector.collect()
    assert cached.samples[0].value == 1.0  # within the TTL: no second LIST
    clock[0] += timedelta(seconds=31)
    [family] = collector.collect()
    assert family.samples[0].value == 0.0


def test_the_gauge_is_described_without_the_cluster_and_absent_when_it_fails() -> None:
    calls: list[int] = []

    def failing() -> list:
        calls.append(1)
        raise KubeError("connection refused")

    collector = PausedOwnersCollector(deployments=failing, clock=lambda: datetime.now(UTC))
    [described] = collector.describe()
    assert described.name == NAME and calls == []  # what serve's master asks: no API call
    assert list(collector.collect()) == [] and calls == [1]  # no sample, the scrape still answers
