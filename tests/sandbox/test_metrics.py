"""The sandbox /metrics content: kube-state-metrics v2 names and labels
(kubernetes/kube-state-metrics docs/metrics/workload/{pod,replicaset,deployment}-metrics.md)
and the per-pod request histogram, advancing with the clock."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sandbox import metrics, pods
from sandbox.objects import apply_defaults
from sandbox.store import NotFound, Store
from tests.binaries import require_binary
from tests.sandbox.support import DEPLOYMENT, Clock


def deploy(store: Store, fault: str | None = None, **annotations: str) -> None:
    obj = yaml.safe_load(DEPLOYMENT)
    if fault:
        annotations["sandbox.auto-rollback/fault"] = fault
    if annotations:
        obj["spec"]["template"]["metadata"]["annotations"] = annotations
    apply_defaults("deployments", obj)
    try:
        current = store.get("deployments", "shop", "web")
    except NotFound:
        store.create("deployments", obj)
        return
    current["spec"] = obj["spec"]
    store.update("deployments", current)


def samples(store: Store) -> list[tuple[str, dict[str, str], float]]:
    text = metrics.render(store)
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def values(store: Store, name: str, **match: str) -> list[float]:
    return [
        value
        for n, labels, value in samples(store)
        if n == name and all(labels.get(k) == v for k, v in match.items())
    ]


def pod_names(store: Store) -> list[str]:
    items, _ = store.list("pods", "shop")
    return [p["metadata"]["name"] for p in items]


def p99(store: Store, pod: str) -> float:
    """histogram_quantile(0.99, ...) over one pod's cumulative buckets."""
    buckets = sorted(
        (float(labels["le"]), value)
        for n, labels, value in samples(store)
        if n == "http_request_duration_seconds_bucket" and labels["pod"] == pod
    )
    total = buckets[-1][1]
    rank = 0.99 * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    raise AssertionError("no bucket reached the rank")


def test_join_labels_match_kube_state_metrics(store: Store) -> None:
    deploy(store)
    (rs,) = store.list("replicasets", "shop")[0]
    rs_name = rs["metadata"]["name"]
    owners = [(labels, v) for n, labels, v in samples(store) if n == "kube_pod_owner"]
    assert len(owners) == 2
    for labels, value in owners:
        assert value == 1
        assert set(labels) == {
            "namespace",
            "pod",
            "uid",
            "owner_kind",
            "owner_name",
            "owner_is_controller",
        }
        assert (labels["owner_kind"], labels["owner_name"], labels["owner_is_controller"]) == (
            "ReplicaSet",
            rs_name,
            "true",
        )
    (rs_owner,) = [labels for n, labels, _ in samples(store) if n == "kube_replicaset_owner"]
    assert rs_owner == {
        "namespace": "shop",
        "replicaset": rs_name,
        "owner_kind": "Deployment",
        "owner_name": "web",
        "owner_is_controller": "true",
    }
    created = rs["metadata"]["creationTimestamp"]
    assert values(store, "kube_replicaset_created", replicaset=rs_name) == [
        datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    ]
    assert values(store, "kube_replicaset_spec_replicas", replicaset=rs_name) == [2]
    assert values(store, "kube_replicaset_status_ready_replicas", replicaset=rs_name) == [2]
    assert values(store, "kube_deployment_status_replicas_available", deployment="web") == [2]
    assert values(store, "kube_deployment_status_replicas_updated", deployment="web") == [2]
    assert values(store, "kube_deployment_spec_replicas", deployment="web") == [2]
    generation = values(store, "kube_deployment_metadata_generation", deployment="web")
    assert (
        generation
        == values(store, "kube_deployment_status_observed_generation", deployment="web")
        == [1]
    )


def test_owner_series_follow_kube_state_metrics_v2_for_no_owner_and_several(store: Store) -> None:
    # v2 writes empty owner labels for an object nobody owns (v1 wrote "<none>"), and one series
    # per ownerReference; tests/controlplane/test_kube_state_metrics.py holds the real one to it.
    pod = {
        "metadata": {"name": "bare", "namespace": "shop"},
        "spec": {"containers": [{"name": "app", "image": "bare:1"}]},
    }
    apply_defaults("pods", pod)
    store.create("pods", pod)
    rs = {
        "metadata": {
            "name": "lone",
            "namespace": "shop",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "uid": "u-a"},
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "b",
                    "uid": "u-b",
                    "controller": True,
                },
            ],
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "lone"}},
            "template": {
                "metadata": {"labels": {"app": "lone"}},
                "spec": {"containers": [{"name": "app", "image": "lone:1"}]},
            },
        },
    }
    apply_defaults("replicasets", rs)
    store.create("replicasets", rs)
    [owner] = [labels for n, labels, _ in samples(store) if n == "kube_pod_owner"]
    assert (owner["owner_kind"], owner["owner_name"], owner["owner_is_controller"]) == ("", "", "")
    rs_owners = sorted(
        (labels["owner_kind"], labels["owner_name"], labels["owner_is_controller"])
        for n, labels, _ in samples(store)
        if n == "kube_replicaset_owner"
    )
    assert rs_owners == [("ConfigMap", "a", "false"), ("Deployment", "b", "true")]


def test_crashloop_restarts_grow_with_time_and_show_the_waiting_reason(
    store: Store, clock: Clock
) -> None:
    deploy(store, "crashloop")
    pod = pod_names(store)[0]
    first = values(store, "kube_pod_container_status_restarts_total", pod=pod, container="app")
    clock.now += timedelta(seconds=60)
    later = values(store, "kube_pod_container_status_restarts_total", pod=pod, container="app")
    assert later[0] - first[0] == 60 / pods.RESTART_PERIOD_SECONDS
    assert values(
        store, "kube_pod_container_status_waiting_reason", pod=pod, reason="CrashLoopBackOff"
    ) == [1]
    assert values(
        store, "kube_pod_container_status_last_terminated_reason", pod=pod, reason="Error"
    ) == [1]
    assert values(store, "kube_pod_status_ready", pod=pod, condition="false") == [1]
    assert values(store, "kube_deployment_status_replicas_available", deployment="web") == [0]


def test_oomkilled_pod_reports_oomkilled_as_last_termination(store: Store) -> None:
    deploy(store, "oomkilled")
    pod = pod_names(store)[0]
    assert values(
        store,
        "kube_pod_container_status_last_terminated_reason",
        pod=pod,
        container="app",
        reason="OOMKilled",
    ) == [1]
    assert values(store, "kube_pod_container_status_restarts_total", pod=pod)[0] >= 1


def test_healthy_pods_have_no_restarts_and_no_termination_reason(
    store: Store, clock: Clock
) -> None:
    deploy(store)
    clock.now += timedelta(minutes=10)
    assert values(store, "kube_pod_container_status_restarts_total") == [0, 0]
    assert values(store, "kube_pod_container_status_last_terminated_reason") == []
    assert values(store, "kube_pod_container_status_waiting_reason") == []


def test_request_histogram_grows_and_slow_pods_have_a_higher_p99(
    store: Store, clock: Clock
) -> None:
    deploy(store)
    healthy = pod_names(store)[0]
    clock.now += timedelta(seconds=30)
    count = values(store, "http_request_duration_seconds_count", pod=healthy)[0]
    assert (
        count
        == 30 * pods.REQUESTS_PER_SECOND * sum(share for _, share in pods.LATENCY_SHAPE) / 1000
    )
    clock.now += timedelta(seconds=30)
    assert values(store, "http_request_duration_seconds_count", pod=healthy)[0] > count
    healthy_p99 = p99(store, healthy)
    assert healthy_p99 < 0.25
    deploy(store, "slow", **{"sandbox.auto-rollback/latency-seconds": "2"})
    slow = pod_names(store)[0]
    clock.now += timedelta(seconds=60)
    assert p99(store, slow) > 2.0
    assert p99(store, slow) > 10 * healthy_p99


def test_behaviour_change_keeps_counters_monotonic(store: Store, clock: Clock) -> None:
    deploy(store)
    pod = pod_names(store)[0]
    clock.now += timedelta(seconds=40)
    before = {
        (n, tuple(sorted(labels.items()))): v
        for n, labels, v in samples(store)
        if labels.get("pod") == pod and (n.endswith("_total") or n.startswith("http_"))
    }
    pods.set_behaviour(store, "shop", pod, "crashloop", None)
    clock.now += timedelta(seconds=45)
    pods.set_behaviour(store, "shop", pod, None, None)
    clock.now += timedelta(seconds=5)
    after = {
        (n, tuple(sorted(labels.items()))): v
        for n, labels, v in samples(store)
        if labels.get("pod") == pod and (n.endswith("_total") or n.startswith("http_"))
    }
    for key, value in before.items():
        assert after[key] >= value, key
    restarts = [v for (n, _), v in after.items() if n.endswith("restarts_total")]
    assert restarts == [3]  # 1 at the crash, then one per 20 s for 45 s
    ready = store.get("pods", "shop", pod)
    assert pods.is_ready(ready)


def test_set_behaviour_refuses_unknown_faults_by_name(store: Store) -> None:
    deploy(store)
    with pytest.raises(ValueError, match="'meltdown'"):
        pods.set_behaviour(store, "shop", pod_names(store)[0], "meltdown", None)
    with pytest.raises(ValueError, match="latency_seconds"):
        pods.set_behaviour(store, "shop", pod_names(store)[0], "slow", -1)


def test_output_parses_as_prometheus_text_with_help_and_type(store: Store) -> None:
    deploy(store)
    text = metrics.render(store)
    kinds: dict[str, Any] = {f.name: f.type for f in text_string_to_metric_families(text)}
    # the parser names a counter family without its _total suffix
    assert kinds["kube_pod_container_status_restarts"] == "counter"
    assert kinds["http_request_duration_seconds"] == "histogram"
    assert kinds["kube_pod_owner"] == "gauge"
    assert "# TYPE http_request_duration_seconds histogram" in text


def test_pod_as_served_reports_restarts_that_grew_since_the_last_write(
    store: Store, clock: Clock
) -> None:
    deploy(store, "crashloop")
    stored = store.list("pods", "shop")[0][0]
    assert stored["status"]["containerStatuses"][0]["restartCount"] == 1
    clock.now += timedelta(seconds=100)
    served = pods.as_served(stored, clock.now)
    assert served["status"]["containerStatuses"][0]["restartCount"] == 6
    assert stored["status"]["containerStatuses"][0]["restartCount"] == 1  # not mutated


@pytest.mark.promtool
def test_promtool_accepts_the_exposition_without_lint_findings(store: Store, clock: Clock) -> None:
    promtool = require_binary("promtool")
    deploy(store, "oomkilled")
    clock.now += timedelta(seconds=30)
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=metrics.render(store),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_restart_period_annotation_speeds_up_the_crash_loop(store: Store, clock: Clock) -> None:
    deploy(store, "crashloop", **{"sandbox.auto-rollback/restart-period-seconds": "2"})
    pod = pod_names(store)[0]
    clock.now += timedelta(seconds=10)
    assert values(store, "kube_pod_container_status_restarts_total", pod=pod) == [6]


def test_annotating_a_running_pod_changes_its_behaviour_from_then_on(
    store: Store, clock: Clock
) -> None:
    deploy(store)
    name = pod_names(store)[0]
    clock.now += timedelta(seconds=30)
    served = values(store, "http_request_duration_seconds_count", pod=name)[0]
    pod = store.get("pods", "shop", name)
    pod["metadata"]["annotations"]["sandbox.auto-rollback/fault"] = "oomkilled"
    store.update("pods", pod)  # what `kubectl annotate pod` sends
    assert not pods.is_ready(store.get("pods", "shop", name))
    assert store.get("deployments", "shop", "web")["status"]["readyReplicas"] == 1
    clock.now += timedelta(seconds=30)
    assert values(store, "http_request_duration_seconds_count", pod=name) == [served]
    assert values(
        store, "kube_pod_container_status_last_terminated_reason", pod=name, reason="OOMKilled"
    ) == [1]
