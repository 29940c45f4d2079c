"""An alert that reached ANY replica keeps the leader from stamping its revision healthy.

Each replica has its own audit, so the receiver also records `auto-rollback/alerted-at` on the
alerting current revision (once per period it is current), where every tracker sees it; and a
stamp older than such an alert no longer counts as evidence.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.receiver_harness import Harness, minutes
from sandbox.testing import SandboxHandle
from tests.tracker.support import FakeClock, rs_annotations, stamp_of, tracker_for

STAMP = "2020-01-01T00:00:00Z"
LATER = "2020-01-02T00:00:00Z"


def test_alert_received_by_another_replica_blocks_the_leaders_stamp(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    for name in ("leader", "other"):
        (tmp_path / name).mkdir()
    leader = Harness(sandbox, tmp_path / "leader")
    other = Harness(sandbox, tmp_path / "other")
    # One revision only: the alert is skipped (no_healthy_revision), nothing rolls back.
    [rs1] = leader.deploy("web", [("web:1", minutes(2))])
    clock = FakeClock()
    tracker = tracker_for(leader, clock)
    assert tracker.resync_once().state_of("shop", "web") == "waiting"
    [decision] = other.post_alerts(
        other.alert(namespace="shop", deployment="web", replicaset=rs1, started_ago=minutes(1))
    )
    assert decision["reason"] == "no_healthy_revision"
    assert "auto-rollback/alerted-at" in rs_annotations(leader, rs1)
    assert leader.service.audit.query() == []  # the leader's own audit knows nothing
    clock.advance(3600)
    assert tracker.resync_once().state_of("shop", "web") == "alerted"
    assert stamp_of(leader, rs1) is None


@pytest.mark.parametrize(
    ("annotations", "outcome"),
    [
        ({"auto-rollback/healthy-since": STAMP}, ("rolled_back", None)),
        (
            {"auto-rollback/healthy-since": STAMP, "auto-rollback/alerted-at": LATER},
            ("skipped", "no_healthy_revision"),
        ),
    ],
)
def test_stamp_older_than_an_alert_is_not_evidence(
    harness: Harness, annotations: dict[str, str], outcome: tuple[str, str | None]
) -> None:
    # Revision 1 ran only two minutes before revision 2 (the cluster rule cannot prove it):
    # its stamp alone decides, unless a trigger alert came after the stamp.
    rs = harness.deploy("web", [("web:1", minutes(7)), ("web:2", minutes(5))])
    harness.official().patch_namespaced_replica_set(
        rs[0], "shop", {"metadata": {"annotations": annotations}}
    )
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[1])
    )
    assert (decision["outcome"], decision["reason"]) == outcome, decision
    if outcome[1]:
        assert "predates a trigger alert" in decision["detail"]


def test_repeated_deliveries_write_the_mark_once_and_dry_run_writes_none(
    make_harness: object, sandbox: SandboxHandle
) -> None:
    harness = make_harness()  # type: ignore[operator]
    [rs1] = harness.deploy("web", [("web:1", minutes(2))])
    sandbox.controls.clear_requests()
    for _ in range(3):
        harness.post_alerts(harness.alert(namespace="shop", deployment="web", replicaset=rs1))
    patches = [r for r in sandbox.controls.requests() if r["verb"] == "patch"]
    assert len(patches) == 1
    watcher = make_harness(dry_run=True)  # type: ignore[operator]
    [rs2] = watcher.deploy("api", [("api:1", minutes(2))])
    watcher.post_alerts(watcher.alert(namespace="shop", deployment="api", replicaset=rs2))
    assert "auto-rollback/alerted-at" not in rs_annotations(watcher, rs2)


def test_a_revision_that_alerted_while_current_is_never_the_target(harness: Harness) -> None:
    """web:1 ran 25 minutes (the cluster rule alone would prove it) but alerted while current:
    the receiver marked it. When web:2 alerts, web:1 is not a revision to go back to."""
    [rs1] = harness.deploy("web", [("web:1", minutes(25))])
    [first] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs1, started_ago=minutes(1))
    )
    assert first["reason"] == "no_healthy_revision"
    assert "auto-rollback/alerted-at" in rs_annotations(harness, rs1)
    rs = harness.deploy("web", [("web:2", minutes(0))])
    [second] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[-1], started_ago=minutes(0))
    )
    assert (second["outcome"], second["reason"]) == ("skipped", "no_healthy_revision"), second
    assert "while it was current (auto-rollback/alerted-at)" in second["detail"]


def test_an_alert_received_after_the_stamp_it_predates_still_disqualifies(
    harness: Harness,
) -> None:
    """Prometheus sends startsAt from when the rule went pending, before `for:` elapsed: an
    alert may arrive after the tracker stamped its revision yet start before the stamp's
    value. The revision alerted while current all the same."""
    [rs1] = harness.deploy("web", [("web:1", minutes(5))])
    clock = FakeClock()
    tracker = tracker_for(harness, clock)
    assert tracker.resync_once().state_of("shop", "web") == "waiting"
    clock.advance(601)
    assert tracker.resync_once().state_of("shop", "web") == "stamped"
    harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs1, started_ago=minutes(2))
    )
    rs = harness.deploy("web", [("web:2", minutes(0))])
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[-1], started_ago=minutes(0))
    )
    assert (decision["outcome"], decision["reason"]) == ("skipped", "no_healthy_revision")
