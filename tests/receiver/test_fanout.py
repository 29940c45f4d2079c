"""A payload naming several Deployments decides them side by side (webhook.fanout): one target's
alerts in payload order, every answer, record and limit as if they had been decided one by one."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from lab.receiver_harness import Harness, hours, minutes, template_images
from webhook.alerts import Alert
from webhook.fanout import Fanout, by_target
from webhook.kube import Cluster


def alert(status: str = "firing", **labels: str) -> Alert:
    return Alert(
        status=status,
        labels={"alertname": "A", **labels},
        annotations={},
        starts_at=None,  # type: ignore[arg-type]  # grouping reads labels and status only
        ends_at=None,
        generator_url="",
        fingerprint="",
    )


def test_alerts_are_grouped_by_the_workload_they_name_and_resolved_ones_are_left_out() -> None:
    alerts = [
        alert(namespace="shop", deployment="web", replicaset="web-1"),
        alert(namespace="shop", deployment="api"),
        alert("resolved", namespace="shop", deployment="web"),
        alert(namespace="shop", deployment="web", replicaset="web-2"),
        alert(namespace="mall", deployment="web"),  # same name, another namespace
        alert(namespace="shop", replicaset="web-1"),  # no deployment label: by replicaset
        alert(namespace="shop"),  # names no workload: decided without a cluster read
    ]
    groups, others = by_target(alerts)
    assert groups == [[0, 3], [1], [4], [5]]
    assert others == [2, 6]


def test_groups_run_side_by_side_and_results_keep_the_groups_order() -> None:
    fanout = Fanout(workers=4)
    meet = threading.Barrier(4, timeout=10)  # broken (an error) unless all four run at once

    def work(group: list[int]) -> int:
        meet.wait()
        return sum(group)

    try:
        assert fanout.map(work, [[1], [2, 3], [4], [5]]) == [1, 5, 4, 5]
    finally:
        fanout.close()


def test_a_failing_group_is_raised_only_once_every_group_has_finished() -> None:
    fanout = Fanout(workers=2)
    finished: list[int] = []
    slow_may_finish = threading.Event()

    def work(group: list[int]) -> None:
        if group == [0]:
            raise RuntimeError("audit store unavailable")
        slow_may_finish.wait(timeout=10)
        finished.append(group[0])

    try:
        timer = threading.Timer(0.2, slow_may_finish.set)
        timer.start()
        with pytest.raises(RuntimeError, match="audit store unavailable"):
            fanout.map(work, [[0], [1]])
        assert finished == [1], "the other group was abandoned half-way"
    finally:
        fanout.close()


def _payload_alert(harness: Harness, name: str, replicaset: str, instance: str) -> dict[str, Any]:
    made = harness.alert(namespace="shop", deployment=name, replicaset=replicaset)
    made["labels"]["instance"] = instance
    return made


def test_a_slow_write_for_one_deployment_does_not_hold_up_the_others_in_its_payload(
    make_harness: Any,
) -> None:
    harness: Harness = make_harness(kubernetes={"timeout_seconds": 20})
    web = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    api = harness.deploy("api", [("api:1", hours(2)), ("api:2", minutes(3))])
    # web comes first in the payload; its PUT is served only after 3 s. Decided one after the
    # other, api's rollback would be written after web's; side by side, it lands first.
    harness.sandbox.controls.fault(method="PUT", path="/deployments/web$", action="delay", delay=3)
    decisions = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=web[1]),
        harness.alert(namespace="shop", deployment="api", replicaset=api[1]),
    )
    assert [d["deployment"] for d in decisions] == ["web", "api"]  # payload order
    assert [d["outcome"] for d in decisions] == ["rolled_back", "rolled_back"]
    puts = [
        r["path"].rsplit("/", 1)[-1]
        for r in harness.sandbox.controls.requests()
        if r["method"] == "PUT" and "/deployments/" in r["path"]
    ]
    assert puts == ["api", "web"], "api's rollback waited for web's slow write"
    assert template_images(harness.deployment("shop", "web")) == ["web:1"]
    assert template_images(harness.deployment("shop", "api")) == ["api:1"]


def test_one_deployments_alerts_are_decided_in_order_and_the_breaker_stays_exact(
    make_harness: Any,
) -> None:
    harness: Harness = make_harness(max_rollbacks=2)
    alerts = []
    for name in ("a", "b", "c", "d", "e"):
        revisions = harness.deploy(name, [(f"{name}:1", hours(2)), (f"{name}:2", minutes(3))])
        alerts += [_payload_alert(harness, name, revisions[1], f"{name}-{k}") for k in range(2)]
    decisions = harness.post_alerts(*alerts)
    assert [d["deployment"] for d in decisions] == [n for n in "abcde" for _ in range(2)]
    rolled = [d["deployment"] for d in decisions if d["outcome"] == "rolled_back"]
    assert len(rolled) == 2 == len(set(rolled)), decisions
    for name in "abcde":
        first, second = [d for d in decisions if d["deployment"] == name]
        if name in rolled:
            # the repeat came after the rollback, in payload order: it finds revision 2 gone
            assert first["outcome"] == "rolled_back"
            assert second["reason"] == "not_current_revision"
        else:
            assert first["reason"] == second["reason"] == "circuit_open"
    for decision in decisions:
        assert harness.audit_row(decision["id"])["outcome"] == decision["outcome"]


def test_requests_side_by_side_keep_their_connections_for_the_next_ones(sandbox: Any) -> None:
    # 24 requests in flight at once (each served 0.5 s late), twice: the second burst finds
    # the first one's connections kept. A pool smaller than the concurrency closes the surplus
    # after each answer, and every new connection to a real API server is a TLS handshake.
    cluster = Cluster(sandbox.api_client("t"), timeout_seconds=20)
    in_flight = 24

    def burst() -> None:
        sandbox.controls.fault(
            method="GET", path="^/version$", action="delay", delay=0.5, count=in_flight
        )
        threads = [threading.Thread(target=cluster.version) for _ in range(in_flight)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)

    burst()
    made = connections_made(cluster)
    burst()
    assert connections_made(cluster) == made, "the second burst opened new connections"


def connections_made(cluster: Cluster) -> int:
    pools = cluster._api.rest_client.pool_manager.pools  # the client's own count
    return sum(pools[key].num_connections for key in pools.keys())
