"""The health tracker stamps `auto-rollback/healthy-since` only on revisions that proved it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
import yaml

from lab.receiver_harness import Harness, hours, minutes, now, pods_of
from tests.tracker.support import (
    HEALTHY_SINCE,
    FakeClock,
    stamp_of,
    stamp_writes,
    tracker_for,
)
from webhook.revisions import format_k8s_time, parse_k8s_time
from webhook.tracker import unavailability


def test_stamps_after_min_healthy_seconds_and_never_before(
    harness: Harness, clock: FakeClock
) -> None:
    [rs1] = harness.deploy("web", [("web:1", minutes(2))])
    tracker = tracker_for(harness, clock)
    started = clock()
    harness.sandbox.controls.clear_requests()
    assert tracker.resync_once().state_of("shop", "web") == "waiting"
    clock.advance(599)
    assert tracker.resync_once().state_of("shop", "web") == "waiting"
    assert stamp_of(harness, rs1) is None
    clock.advance(1)
    assert tracker.resync_once().state_of("shop", "web") == "stamped"
    # The value is when the healthy period started, not when the stamp was written.
    assert stamp_of(harness, rs1) == format_k8s_time(started)
    clock.advance(3600)
    assert tracker.resync_once().state_of("shop", "web") == "already_stamped"
    assert len(stamp_writes(harness.sandbox.controls.requests())) == 1


def test_per_deployment_min_healthy_seconds_annotation_is_honoured(
    harness: Harness, clock: FakeClock
) -> None:
    [rs1] = harness.deploy(
        "web",
        [("web:1", minutes(2))],
        annotations={"auto-rollback/enabled": "true", "auto-rollback/min-healthy-seconds": "2m"},
    )
    tracker = tracker_for(harness, clock)
    tracker.resync_once()
    clock.advance(119)
    tracker.resync_once()
    assert stamp_of(harness, rs1) is None
    clock.advance(1)
    assert tracker.resync_once().state_of("shop", "web") == "stamped"


def test_only_opted_in_deployments_in_allowed_namespaces_are_stamped(
    make_harness: Callable[..., Harness], clock: FakeClock
) -> None:
    harness = make_harness(min_healthy_seconds=60, namespaces={"deny": ["kube-system", "denied"]})
    harness.sandbox.controls.apply(
        yaml.safe_load(
            "{apiVersion: v1, kind: Namespace, metadata: "
            "{name: team, labels: {auto-rollback/enabled: 'true'}}}"
        )
    )
    by_namespace = harness.deploy("a", [("a:1", minutes(5))], namespace="team", annotations={})
    opted_out = harness.deploy(
        "b", [("b:1", minutes(5))], namespace="team", annotations={"auto-rollback/enabled": "false"}
    )
    silent = harness.deploy("c", [("c:1", minutes(5))], namespace="shop", annotations={})
    denied = harness.deploy("d", [("d:1", minutes(5))], namespace="denied")
    tracker = tracker_for(harness, clock)
    tracker.resync_once()
    clock.advance(60)
    result = tracker.resync_once()
    assert [(o.namespace, o.deployment, o.state) for o in result.observations] == [
        ("team", "a", "stamped")
    ]
    assert stamp_of(harness, by_namespace[0], "team") is not None
    assert stamp_of(harness, opted_out[0], "team") is None
    assert stamp_of(harness, silent[0], "shop") is None
    assert stamp_of(harness, denied[0], "denied") is None


def test_crashlooping_pod_blocks_the_stamp_and_restarts_the_clock(
    harness: Harness, clock: FakeClock
) -> None:
    [rs1] = harness.deploy("web", [("web:1", minutes(2))])
    tracker = tracker_for(harness, clock)
    tracker.resync_once()
    clock.advance(300)
    pod = pods_of(harness, rs1)[0]
    harness.sandbox.controls.set_behaviour("shop", pod, fault="crashloop")
    result = tracker.resync_once()
    assert result.state_of("shop", "web") == "unavailable"
    assert "availableReplicas 1 of 2" in result.observations[0].detail
    clock.advance(400)  # 700s since first seen, but not fully available throughout
    assert tracker.resync_once().state_of("shop", "web") == "unavailable"
    assert stamp_of(harness, rs1) is None

    harness.sandbox.controls.set_behaviour("shop", pod, fault=None)
    healthy_again = clock()
    assert tracker.resync_once().state_of("shop", "web") == "waiting"
    clock.advance(599)
    assert tracker.resync_once().state_of("shop", "web") == "waiting"
    clock.advance(1)
    assert tracker.resync_once().state_of("shop", "web") == "stamped"
    assert stamp_of(harness, rs1) == format_k8s_time(healthy_again)


def _with(deployment: dict, **changes: object) -> dict:
    changed = json.loads(json.dumps(deployment))
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = changed
        for part in parents:
            node = node[part]
        node[leaf] = value
    return changed


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"status__observedGeneration": 1}, "observedGeneration 1 < generation"),
        ({"status__updatedReplicas": 1}, "updatedReplicas 1 of 2"),
        ({"status__replicas": 3}, "replicas 3 of 2"),
        ({"spec__replicas": 0}, "scaled to 0"),
    ],
)
def test_incomplete_rollout_is_not_fully_available(
    harness: Harness, changes: dict, expected: str
) -> None:
    harness.deploy("web", [("web:1", minutes(2)), ("web:2", minutes(1))])
    deployment = harness.deployment("shop", "web")
    assert unavailability(deployment) is None
    assert expected in (unavailability(_with(deployment, **changes)) or "")


def test_rollout_still_progressing_is_not_fully_available(harness: Harness) -> None:
    harness.deploy("web", [("web:1", minutes(2))])
    deployment = harness.deployment("shop", "web")
    for condition in deployment["status"]["conditions"]:
        if condition["type"] == "Progressing":
            condition["reason"] = "ReplicaSetUpdated"
    assert "not True/NewReplicaSetAvailable" in (unavailability(deployment) or "")


def test_trigger_alert_for_the_revision_blocks_the_stamp(
    make_harness: Callable[..., Harness], clock: FakeClock
) -> None:
    harness = make_harness(dry_run=True)
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    assert decision["outcome"] == "dry_run", decision
    tracker = tracker_for(harness, clock)
    result = tracker.resync_once()
    assert result.state_of("shop", "web") == "alerted"
    assert decision["id"] in result.observations[0].detail
    clock.advance(3600)
    assert tracker.resync_once().state_of("shop", "web") == "alerted"
    assert stamp_of(harness, rs[1]) is None


def test_alert_naming_a_pod_of_the_revision_blocks_the_stamp(
    make_harness: Callable[..., Harness], clock: FakeClock
) -> None:
    harness = make_harness(dry_run=True)
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    pod = pods_of(harness, rs[1])[0]
    harness.post_alerts(harness.alert(namespace="shop", pod=pod))
    tracker = tracker_for(harness, clock)
    tracker.resync_once()
    clock.advance(3600)
    assert tracker.resync_once().state_of("shop", "web") == "alerted"
    assert stamp_of(harness, rs[1]) is None


def test_resolved_alerts_and_alerts_for_other_revisions_do_not_block(
    make_harness: Callable[..., Harness], clock: FakeClock
) -> None:
    harness = make_harness(dry_run=True)
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    decisions = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[1], status="resolved"),
        # About revision 1: skipped not_current_revision, with from_replicaset = revision 2.
        harness.alert(namespace="shop", deployment="web", replicaset=rs[0]),
    )
    assert [d["reason"] for d in decisions] == ["resolved", "not_current_revision"]
    assert decisions[1]["from_replicaset"] == rs[1]
    tracker = tracker_for(harness, clock)
    tracker.resync_once()
    clock.advance(600)
    assert tracker.resync_once().state_of("shop", "web") == "stamped"


def test_readopted_revision_gets_a_fresh_stamp_once_healthy_again(
    harness: Harness, clock: FakeClock
) -> None:
    # Revision 1 proves healthy in its first period (the clock then was ~3h ago).
    [rs1] = harness.deploy("web", [("web:1", hours(3))])
    first_period = now() - hours(2.9)
    clock.set(first_period)
    tracker = tracker_for(harness, clock)
    tracker.resync_once()
    clock.advance(600)
    assert tracker.resync_once().state_of("shop", "web") == "stamped"
    old_stamp = stamp_of(harness, rs1)
    assert old_stamp == format_k8s_time(first_period)

    # Revision 2 breaks; the service rolls back to revision 1 (stamped), re-adopting it.
    rs = harness.deploy("web", [("web:2", minutes(5))])
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    assert decision["outcome"] == "rolled_back" and decision["to_replicaset"] == rs1, decision
    assert "stamp" in decision["detail"]
    action = json.loads(
        harness.deployment("shop", "web")["metadata"]["annotations"]["auto-rollback/last-action"]
    )
    reactivated = parse_k8s_time(action["time"])
    assert reactivated is not None

    # Back as the current revision, the old stamp predates this activation: prove it again.
    clock.set(now())
    resumed = clock()
    assert tracker.resync_once().state_of("shop", "web") == "waiting"
    assert stamp_of(harness, rs1) == old_stamp
    clock.advance(599)
    assert tracker.resync_once().state_of("shop", "web") == "waiting"
    clock.advance(1)
    assert tracker.resync_once().state_of("shop", "web") == "stamped"
    fresh = parse_k8s_time(stamp_of(harness, rs1))
    assert fresh is not None and fresh >= reactivated
    assert stamp_of(harness, rs1) == format_k8s_time(max(resumed, reactivated))
    clock.advance(600)
    assert tracker.resync_once().state_of("shop", "web") == "already_stamped"


def test_stamp_write_is_conditional_and_a_conflict_waits_a_round(
    harness: Harness, clock: FakeClock
) -> None:
    [rs1] = harness.deploy("web", [("web:1", minutes(2))])
    tracker = tracker_for(harness, clock)
    tracker.resync_once()
    clock.advance(600)
    # A concurrent writer changes the ReplicaSet between our read and our patch.
    harness.sandbox.controls.interleave(
        method="PATCH",
        path=f"/replicasets/{rs1}$",
        resource="replicasets",
        namespace="shop",
        name=rs1,
        merge_patch={"metadata": {"labels": {"touched": "yes"}}},
    )
    assert tracker.resync_once().state_of("shop", "web") == "conflict"
    assert stamp_of(harness, rs1) is None
    assert tracker.resync_once().state_of("shop", "web") == "stamped"
    assert HEALTHY_SINCE in (harness.replicasets("shop", "web")[0]["metadata"]["annotations"])


def test_follower_never_writes_a_stamp(harness: Harness, clock: FakeClock) -> None:
    [rs1] = harness.deploy("web", [("web:1", minutes(2))])
    tracker = tracker_for(harness, clock, is_leader=lambda: False)
    harness.sandbox.controls.clear_requests()
    tracker.resync_once()
    clock.advance(timedelta(hours=1).total_seconds())
    assert tracker.resync_once().state_of("shop", "web") == "follower"
    assert stamp_of(harness, rs1) is None
    assert stamp_writes(harness.sandbox.controls.requests()) == []


def test_api_error_in_one_round_does_not_restart_the_clock(
    harness: Harness, clock: FakeClock
) -> None:
    [rs1] = harness.deploy("web", [("web:1", minutes(2))])
    tracker = tracker_for(harness, clock)
    started = clock()
    tracker.resync_once()
    clock.advance(300)
    harness.sandbox.controls.fault(method="GET", path="/replicasets", status=503)
    blip = tracker.resync_once()
    assert blip.state_of("shop", "web") is None and "503" in blip.errors[0]
    clock.advance(300)
    assert tracker.resync_once().state_of("shop", "web") == "stamped"
    assert stamp_of(harness, rs1) == format_k8s_time(started)


def test_a_round_lists_replicasets_once_per_namespace(harness: Harness, clock: FakeClock) -> None:
    for name in ("web", "api", "worker"):
        harness.deploy(name, [(f"{name}:1", minutes(2)), (f"{name}:2", minutes(1))])
    harness.sandbox.controls.clear_requests()
    result = tracker_for(harness, clock).resync_once()
    assert {o.deployment: o.state for o in result.observations} == {
        "web": "waiting",
        "api": "waiting",
        "worker": "waiting",
    }
    lists = [
        r
        for r in harness.sandbox.controls.requests()
        if r["resource"] == "replicasets" and r["verb"] == "list"
    ]
    assert len(lists) == 1
