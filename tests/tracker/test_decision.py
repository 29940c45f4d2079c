"""The stamp is what the rollback decision trusts first (evidence rule 1)."""

from __future__ import annotations

from lab.receiver_harness import Harness, minutes, now
from tests.tracker.support import FakeClock, stamp_of, tracker_for


def test_stamped_revision_is_chosen_over_a_newer_unproven_one(
    harness: Harness, clock: FakeClock
) -> None:
    # Twin Deployments with identical history; only in "tracked" did the tracker watch
    # revision 1 while it was current. Revision 1 ran 4 minutes, revision 2 one minute:
    # the cluster-only rule (>= 600s before the next revision) proves neither.
    harness.deploy("web", [("web:1", minutes(20))], namespace="tracked")
    clock.set(now() - minutes(19.5))
    tracker = tracker_for(harness, clock)
    tracker.resync_once()
    clock.advance(600)
    tracker.resync_once()
    harness.deploy("web", [("web:1", minutes(20))], namespace="untracked")
    rs = {}
    for namespace in ("tracked", "untracked"):
        rs[namespace] = harness.deploy(
            "web", [("web:2", minutes(16)), ("web:3", minutes(15))], namespace=namespace
        )
    assert stamp_of(harness, rs["tracked"][0], "tracked") is not None
    assert stamp_of(harness, rs["untracked"][0], "untracked") is None

    tracked, untracked = harness.post_alerts(
        harness.alert(namespace="tracked", deployment="web", replicaset=rs["tracked"][2]),
        harness.alert(namespace="untracked", deployment="web", replicaset=rs["untracked"][2]),
    )
    assert tracked["outcome"] == "rolled_back", tracked
    assert (tracked["from_revision"], tracked["to_revision"]) == (3, 1)
    assert "r2 unproven" in tracked["detail"] and "r1 healthy (stamp:" in tracked["detail"]
    assert (untracked["outcome"], untracked["reason"]) == ("skipped", "no_healthy_revision")
