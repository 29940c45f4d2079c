"""Idempotency, races, the circuit breaker: never roll back twice, never overwrite a human."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

from lab.receiver_harness import Harness, hours, minutes, template_images
from sandbox.testing import SandboxHandle


def bad_rollout(harness: Harness, i: int) -> dict[str, Any]:
    """Deployment app{i}: a healthy revision two hours old, a bad one three minutes old; the
    alert for the bad one."""
    rs = harness.deploy(f"app{i}", [("v:1", hours(2)), (f"v:2-{i}", minutes(3))])
    return harness.alert(namespace="shop", deployment=f"app{i}", replicaset=rs[1])


def outcome_of(harness: Harness, alert: dict[str, Any]) -> str:
    """Post one alert; its decision's reason, or its outcome when it has none."""
    [decision] = harness.post_alerts(alert)
    return str(decision["reason"] or decision["outcome"])


def test_same_payload_five_times_rolls_back_once(harness: Harness) -> None:
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    payload = harness.payload(harness.alert(namespace="shop", deployment="web", replicaset=rs[1]))
    harness.sandbox.controls.clear_requests()
    outcomes = []
    for _ in range(5):
        response = harness.post(payload)
        assert response.status_code == 200
        outcomes += [(d["outcome"], d["reason"]) for d in response.get_json()["decisions"]]
    assert outcomes[0] == ("rolled_back", None)
    assert outcomes[1:] == [("skipped", "not_current_revision")] * 4
    puts = [r for r in harness.sandbox.controls.requests() if r["method"] == "PUT"]
    assert len(puts) == 1


def test_concurrent_deliveries_to_two_replicas_roll_back_once(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    # Two replicas of the service (separate Services and audit stores, as two pods), two
    # deliveries each, all at once: the conditional write settles it.
    for i in range(2):
        (tmp_path / f"r{i}").mkdir()
    replicas = [Harness(sandbox, tmp_path / f"r{i}") for i in range(2)]
    rs = replicas[0].deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    payload = replicas[0].payload(
        replicas[0].alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    barrier = threading.Barrier(4)
    results: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def deliver(replica: Harness) -> None:
        barrier.wait()
        response = replica.post(payload)
        with lock:
            results.extend((d["outcome"], d["reason"]) for d in response.get_json()["decisions"])

    threads = [threading.Thread(target=deliver, args=(replicas[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    counts = Counter(results)
    assert counts[("rolled_back", None)] == 1, results
    allowed = {("rolled_back", None), ("skipped", "not_current_revision"), ("skipped", "duplicate")}
    assert set(counts) <= allowed
    assert sum(counts.values()) == 4
    assert template_images(replicas[0].deployment("shop", "web")) == ["web:1"]
    events = [e for e in replicas[0].events("shop") if e["reason"] == "AutoRollback"]
    assert len(events) == 1


def test_alert_on_the_revision_we_rolled_back_to_is_rollback_of_rollback(
    harness: Harness,
) -> None:
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    harness.post_alerts(harness.alert(namespace="shop", deployment="web", replicaset=rs[1]))
    # Now web:1 (re-adopted, revision 3) is current and an alert fires for it.
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[0], started_ago=minutes(0))
    )
    assert decision["reason"] == "rollback_of_rollback"
    assert harness.audit_row(decision["id"])["reason"] == "rollback_of_rollback"
    assert template_images(harness.deployment("shop", "web")) == ["web:1"]
    assert [e["reason"] for e in harness.events("shop")].count("AutoRollback") == 1


def test_human_change_between_read_and_write_survives(harness: Harness) -> None:
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    # Just before our PUT, a human scales the Deployment to 5 replicas: our write gets 409,
    # the decision is taken again from a fresh read, and the human's change is kept.
    harness.sandbox.controls.interleave(
        method="PUT",
        path="/deployments/web$",
        resource="deployments",
        namespace="shop",
        name="web",
        merge_patch={"spec": {"replicas": 5}},
    )
    harness.sandbox.controls.clear_requests()
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    assert decision["outcome"] == "rolled_back", decision
    statuses = [r["status"] for r in harness.sandbox.controls.requests() if r["method"] == "PUT"]
    assert statuses == [409, 200]
    deployment = harness.deployment("shop", "web")
    assert deployment["spec"]["replicas"] == 5
    assert template_images(deployment) == ["web:1"]


def test_a_deployment_that_keeps_changing_fails_with_conflict(make_harness: Any) -> None:
    harness = make_harness(max_conflict_retries=1)
    harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    for replicas in (3, 4):
        harness.sandbox.controls.interleave(
            method="PUT",
            path="/deployments/web$",
            resource="deployments",
            namespace="shop",
            name="web",
            merge_patch={"spec": {"replicas": replicas}},
        )
    [decision] = harness.post_alerts(harness.alert(namespace="shop", deployment="web"))
    assert (decision["outcome"], decision["reason"]) == ("failed", "conflict")
    assert harness.audit_row(decision["id"])["reason"] == "conflict"
    assert "AutoRollbackFailed" in harness.event_reasons("shop")
    assert template_images(harness.deployment("shop", "web")) == ["web:2"]
    assert harness.deployment("shop", "web")["spec"]["replicas"] == 4


def test_circuit_breaker_opens_after_max_rollbacks(make_harness: Any) -> None:
    harness = make_harness(max_rollbacks=5)
    outcomes = [outcome_of(harness, bad_rollout(harness, i)) for i in range(6)]
    assert outcomes == ["rolled_back"] * 5 + ["circuit_open"]
    [row] = harness.service.audit.query(deployment="app5")
    assert row["reason"] == "circuit_open" and "max_rollbacks 5" in row["detail"]
    assert template_images(harness.deployment("shop", "app5")) == ["v:2-5"]
    app5_events = [
        e["reason"] for e in harness.events("shop") if e["involvedObject"]["name"] == "app5"
    ]
    assert not [r for r in app5_events if r.startswith("AutoRollback")]


def test_circuit_breaker_holds_under_concurrent_deliveries(make_harness: Any) -> None:
    # Decisions are recorded after they are made: six at once must still give five rollbacks.
    harness = make_harness(max_rollbacks=5)
    alerts = [bad_rollout(harness, i) for i in range(6)]
    barrier = threading.Barrier(6)
    outcomes: list[str] = []
    lock = threading.Lock()

    def deliver(alert: dict[str, Any]) -> None:
        barrier.wait()
        result = outcome_of(harness, alert)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=deliver, args=(a,)) for a in alerts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["circuit_open"] + ["rolled_back"] * 5


def test_dry_run_previews_the_circuit_breaker(make_harness: Any) -> None:
    harness = make_harness(max_rollbacks=2, dry_run=True)
    outcomes = [outcome_of(harness, bad_rollout(harness, i)) for i in range(3)]
    assert outcomes == ["dry_run", "dry_run", "circuit_open"]


def test_circuit_breaker_counts_rollbacks_made_by_the_other_replica(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    # Replica A rolls back two Deployments, replica B one; with max_rollbacks 3 cluster-wide,
    # B's next one is circuit_open once B has read the cluster's last-action annotations,
    # though B's own audit holds only one rollback.
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    a = Harness(sandbox, tmp_path / "a", max_rollbacks=3)
    b = Harness(sandbox, tmp_path / "b", max_rollbacks=3)
    outcomes = [outcome_of(r, bad_rollout(r, i)) for i, r in enumerate([a, a, b])]
    assert outcomes == ["rolled_back"] * 3
    alert = bad_rollout(b, 3)
    b.service.cluster_rollbacks.refresh()
    [decision] = b.post_alerts(alert)
    assert decision["reason"] == "circuit_open", decision
    assert "3 rollbacks" in decision["detail"]
    assert template_images(b.deployment("shop", "app3")) == ["v:2-3"]
