"""The tracker reports a stay-put revert only for a Deployment still as its round listed it.

A round lists Deployments, then ReplicaSets. A rollback landing in between (its PUT, then the
bad mark on the revision it left) paired the old template with the new mark: the storm at 500
Deployments recorded 175 false AutoRollbackReverted for 500 rollbacks. Here the sandbox makes
the Deployment change just before the round's ReplicaSet LIST."""

from __future__ import annotations

import json
from collections.abc import Callable

from lab.receiver_harness import Harness, hours, minutes
from tests.tracker.support import FakeClock, rs_annotations, tracker_for
from webhook.stayput import ANNOTATION_REVERTED_AT

BAD_MARK = {"auto-rollback/bad-revision": json.dumps({"audit_id": "d-0"})}


def bad_current(harness: Harness) -> list[str]:
    """web on revision 2, which carries a bad mark (as a revert to it would leave it)."""
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    harness.service.cluster.annotate_replicaset("shop", rs[1], dict(BAD_MARK))
    return rs


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
    harness.sandbox.controls.interleave(
        method="GET",
        path=r"/apis/apps/v1/namespaces/shop/replicasets$",
        resource="deployments",
        namespace="shop",
        name="web",
        merge_patch={"spec": {"template": template}},
    )
    tracker_for(harness, clock).resync_once()
    assert ANNOTATION_REVERTED_AT not in rs_annotations(harness, rs[1])
    assert "AutoRollbackReverted" not in harness.event_reasons("shop")
