"""A stay-put revert is reported (tracker) or held (decision) only for a Deployment still as it
was read: the tracker's round and a decision both read the Deployment, then its ReplicaSets.

A round lists Deployments, then ReplicaSets. A rollback landing in between (its PUT, then the
bad mark on the revision it left) paired the old template with the new mark: the storm at 500
Deployments recorded 175 false AutoRollbackReverted for 500 rollbacks. Here the sandbox makes
the Deployment change just before the round's ReplicaSet LIST."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lab.receiver_harness import SERVICE_TOKEN, Harness, hours, minutes
from tests.tracker.support import FakeClock, rs_annotations, tracker_for
from webhook.stayput import ANNOTATION_REVERTED_AT

BAD_MARK = {"auto-rollback/bad-revision": json.dumps({"audit_id": "d-0"})}


def bad_current(harness: Harness) -> list[str]:
    """web on revision 2, which carries a bad mark (as a revert to it would leave it)."""
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    harness.service.cluster.annotate_replicaset("shop", rs[1], dict(BAD_MARK))
    return rs


def before_the_replicaset_list(harness: Harness, merge_patch: dict[str, Any]) -> None:
    """The Deployment web is merge-patched just before the next ReplicaSet LIST is answered."""
    harness.sandbox.controls.interleave(
        method="GET",
        path=r"/apis/apps/v1/namespaces/shop/replicasets$",
        resource="deployments",
        namespace="shop",
        name="web",
        merge_patch=merge_patch,
    )


def test_a_deployment_still_on_its_bad_revision_is_reported(
    make_harness: Callable[..., Harness], clock: FakeClock
) -> None:
    harness = make_harness()
    rs = bad_current(harness)
    tracker_for(harness, clock).resync_once()
    assert ANNOTATION_REVERTED_AT in rs_annotations(harness, rs[1])
    assert "AutoRollbackReverted" in harness.event_reasons("shop")


def test_a_deployment_that_moved_after_the_round_listed_it_is_not_reported(
    make_harness: Callable[..., Harness], clock: FakeClock
) -> None:
    harness = make_harness()
    rs = bad_current(harness)
    deployment = harness.deployment("shop", "web")
    template = deployment["spec"]["template"]
    template["spec"]["containers"][0]["image"] = "web:1"
    # Just before the round's ReplicaSet LIST: the Deployment goes back to revision 1.
    before_the_replicaset_list(harness, {"spec": {"template": template}})
    tracker_for(harness, clock).resync_once()
    assert ANNOTATION_REVERTED_AT not in rs_annotations(harness, rs[1])
    assert "AutoRollbackReverted" not in harness.event_reasons("shop")


def deployment_gets(harness: Harness) -> int:
    return len(
        [
            r
            for r in harness.sandbox.controls.requests()
            if r["token"] == SERVICE_TOKEN
            and r["method"] == "GET"
            and r["path"].endswith("/deployments/web")
        ]
    )


def test_an_alert_for_a_bad_marked_current_revision_reads_the_deployment_again_to_hold_it(
    make_harness: Callable[..., Harness],
) -> None:
    # The decision's side of the same race (policy: a revert only for a Deployment unmoved
    # since it was read). The storm on the real control plane met it: one repeat in 2,000 was
    # held as a revert 23 ms after the rollback it repeated, the controller not yet having
    # re-numbered anything. The sandbox's controller re-numbers within the write, so there the
    # race shows as a newer revision (tests/policy has the race itself); this shows the read.
    harness = make_harness()
    rs = bad_current(harness)
    harness.sandbox.controls.clear_requests()
    [decision] = harness.post_alerts(harness.alert(namespace="shop", replicaset=rs[1]))
    assert (decision["outcome"], decision["reason"]) == ("skipped", "cooldown")
    assert "reverted to since" in decision["detail"], decision["detail"]
    assert deployment_gets(harness) == 2  # the read, and the fresh one that confirms it
    # A spec write between the two reads (generation moves, no new revision): decided again
    # from fresh reads, then held.
    before_the_replicaset_list(harness, {"spec": {"minReadySeconds": 1}})
    harness.sandbox.controls.clear_requests()
    [again] = harness.post_alerts(harness.alert(namespace="shop", replicaset=rs[1]))
    assert (again["outcome"], again["reason"]) == ("skipped", "cooldown")
    assert deployment_gets(harness) == 4  # two attempts, each confirming
