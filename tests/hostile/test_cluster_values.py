"""Values someone who may edit a Deployment or a ReplicaSet writes by hand, that the Deployment
controller and kubectl would not read either: a revision past int64 or not in ASCII digits, a time
with no timezone or no UTC equivalent, a duration in other digits or of a billion years, a JSON
record that is no object. Each is read as absent (kubectl skips such a revision) or ignored with
a note, never a 5xx: Alertmanager retries a 5xx forever, and every alert for that Deployment
would meet the same value."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest

from lab.receiver_harness import Harness, hours, minutes, now, pods_of, template_images
from sandbox.testing import SandboxHandle
from tests.hostile.support import console_login
from tests.oncall.support import ALICE, OnCall
from tests.tracker.support import (
    LEASE_NAME,
    LEASE_NAMESPACE,
    FakeClock,
    create_lease_namespace,
    lease_spec,
    rs_annotations,
    tracker_for,
)
from webhook.kube import Cluster
from webhook.leader import LeaderElector, lease_problem
from webhook.revisions import format_k8s_time

REVISION = "deployment.kubernetes.io/revision"


def deploy(h: Harness, name: str) -> list[str]:
    rss = h.deploy(name, [(f"{name}:1", hours(2)), (f"{name}:2", minutes(3))])
    h.sandbox.controls.clear_requests()
    return rss


def annotate(h: Harness, kind: str, name: str, annotations: dict[str, str]) -> None:
    apps = kubernetes.client.AppsV1Api(h.api)
    patch = {"metadata": {"annotations": annotations}}
    if kind == "replicaset":
        apps.patch_namespaced_replica_set(name, "shop", patch)
    else:
        apps.patch_namespaced_deployment(name, "shop", patch)


def decide(h: Harness, name: str) -> dict[str, Any]:
    response = h.post(json.dumps(h.payload(h.alert(namespace="shop", deployment=name))))
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    [decision] = response.get_json()["decisions"]
    return dict(decision)


@pytest.mark.parametrize("value", ["9" * 20, "1_2", " 4", "\u0663"], ids=ascii)
@pytest.mark.parametrize("which", ["current", "older"])
def test_a_revision_kubectl_cannot_parse_is_no_revision(
    on_each_store: Harness, value: str, which: str
) -> None:
    """strconv.ParseInt(v, 10, 64) is how the controller and `kubectl rollout undo` read it.
    Past int64 was an OverflowError on SQLite and a BIGINT out of range on PostgreSQL (a 500
    and a 503); '1_2' was read as revision 12 and ' 4' as 4, where kubectl skips them."""
    h = on_each_store
    old, new = deploy(h, "web")
    annotate(h, "replicaset", new if which == "current" else old, {REVISION: value})
    decision = decide(h, "web")
    assert decision["outcome"] == "skipped", decision
    assert template_images(h.deployment("shop", "web")) == ["web:2"]
    stored = h.audit_row(decision["id"])
    assert stored["from_revision"] in (None, 2) and stored["to_revision"] is None


def test_cluster_times_without_a_timezone_or_a_utc_equivalent_are_read_as_absent(
    make_harness: Any,
) -> None:
    h: Harness = make_harness(max_rollbacks=100)
    cases = {
        # A naive time met an aware one: TypeError at the cooldown's and the stamp's comparison.
        "alerted": "2026-01-01T00:00:00",
        # Year 9999 read as a stamp of health; in -23:59 it has no UTC equivalent at all.
        "healthy": "9999-12-31T23:59:59Z",
        "healthy-west": "9999-12-31T23:59:59-23:59",
    }
    for case, value in cases.items():
        old, new = deploy(h, case)
        if case == "alerted":
            annotate(h, "replicaset", new, {"auto-rollback/alerted-at": value})
        else:
            annotate(h, "replicaset", old, {"auto-rollback/healthy-since": value})
        decision = decide(h, case)
        # Read as absent: no cooldown, no stamp; the cluster's own evidence decides.
        assert decision["outcome"] == "rolled_back", decision
        assert "stamp" not in decision["detail"] and "(cluster: ran" in decision["detail"]
        assert template_images(h.deployment("shop", case)) == [f"{case}:1"]


@pytest.mark.parametrize(
    "written",
    [
        json.dumps({"time": "2026-01-01T00:00:00", "audit_id": "d-1"}),  # a time with no zone
        json.dumps({"time": "soon", "audit_id": "d-1"}),
        "[]",
        "{not json",
        "[" * 5000 + "]" * 5000,
    ],
    ids=["naive-time", "not-a-time", "a-list", "not-json", "nested-5000"],
)
def test_a_last_action_that_cannot_be_read_holds_cooldown(harness: Harness, written: str) -> None:
    """The service's own record of its last rollback, edited past reading: when that was is
    unknown, so it may be within the cooldown. Like a bad mark it cannot read, it still holds
    (and never a 5xx); the detail says how to release it."""
    h = harness
    deploy(h, "web")
    annotate(h, "deployment", "web", {"auto-rollback/last-action": written})
    decision = decide(h, "web")
    assert (decision["outcome"], decision["reason"]) == ("skipped", "cooldown"), decision
    assert "auto-rollback/last-action cannot be read" in decision["detail"]
    assert template_images(h.deployment("shop", "web")) == ["web:2"]


@pytest.mark.parametrize(
    ("stamped", "counts"),
    [
        (minutes(3.5), True),  # while it was current (from 4 to 3 minutes ago): the control
        (minutes(1), False),  # after revision 2 replaced it
        ("2999-01-01T00:00:00Z", False),  # in range, and later than any alert could be
    ],
    ids=["while-current", "after-replaced", "year-2999"],
)
def test_a_stamp_later_than_the_revision_was_current_is_no_evidence(
    harness: Harness, stamped: Any, counts: bool
) -> None:
    """The tracker stamps a revision while it is current. A healthy-since stamp later than that
    (written by hand, say 2999) passed as health, and outlasted every later alert, which only
    counts when it comes after the stamp. Revision 1 here lived one minute, so only the stamp
    could prove it; with it discounted the choice finds no healthy revision."""
    h = harness
    old, _ = h.deploy("web", [("web:1", minutes(4)), ("web:2", minutes(3))])
    h.sandbox.controls.clear_requests()
    value = stamped if isinstance(stamped, str) else format_k8s_time(now() - stamped)
    annotate(h, "replicaset", old, {"auto-rollback/healthy-since": value})
    decision = decide(h, "web")
    if counts:
        assert decision["outcome"] == "rolled_back", decision
        assert "r1 healthy (stamp: stamped healthy since" in decision["detail"]
    else:
        assert (decision["outcome"], decision["reason"]) == ("skipped", "no_healthy_revision")
        assert "is after revision 2 replaced it" in decision["detail"], decision
        assert template_images(h.deployment("shop", "web")) == ["web:2"]


@pytest.mark.parametrize("key", ["auto-rollback/cooldown", "auto-rollback/min-healthy-seconds"])
@pytest.mark.parametrize("value", ["\u00b2", "9" * 30, "99999999999h"], ids=ascii)
def test_a_duration_annotation_no_one_means_is_ignored_with_a_note(
    harness: Harness, key: str, value: str
) -> None:
    """'²' passed str.isdigit() and failed int() (ValueError); past timedelta's range it was an
    OverflowError. Both were a 500 on every alert for the Deployment."""
    deploy(harness, "web")
    annotate(harness, "deployment", "web", {key: value})
    decision = decide(harness, "web")
    assert decision["outcome"] == "rolled_back", decision
    assert f"ignored {key}: " in decision["detail"]


# What JSON annotations can be edited to: a list, a number, a string, null, and nesting past
# the decoder's recursion limit (the API server takes 256 KiB of annotations).
NOT_OBJECTS = ["[]", "5", '"x"', "null", "[" * 100_000 + "]" * 100_000]


@pytest.mark.parametrize("value", NOT_OBJECTS, ids=lambda v: ascii(v)[:12])
@pytest.mark.parametrize(
    "key",
    ["auto-rollback/last-action", "auto-rollback/gitops-paused", "auto-rollback/bad-revision"],
)
def test_a_json_annotation_edited_to_no_object_is_never_a_5xx(
    oncall: OnCall, key: str, value: str
) -> None:
    """Each was a 500 somewhere: a RecursionError deciding an alert, resuming and showing the
    console page; .get on a list, a number or None on the page of a bad-revision mark."""
    h = oncall.h
    old, _ = deploy(h, "web")
    if key == "auto-rollback/bad-revision":
        annotate(h, "replicaset", old, {key: value})
    else:
        annotate(h, "deployment", "web", {key: value})
    decision = decide(h, "web")
    # A bad-revision mark that cannot be read is still a mark: never rolled back to; a
    # last-action that cannot be read still holds cooldown.
    rolled_back = key == "auto-rollback/gitops-paused"
    assert (decision["outcome"] == "rolled_back") is rolled_back, decision
    if key == "auto-rollback/last-action":
        assert decision["reason"] == "cooldown" and "cannot be read" in decision["detail"]
    resumed = oncall.client.post(
        "/api/v1/resume",
        json={"namespace": "shop", "deployment": "web", "reason": "by hand"},
        headers={"Authorization": f"Bearer {ALICE}"},
    )
    assert 400 <= resumed.status_code < 500, resumed.get_data(as_text=True)[:300]
    console = oncall.app.test_client()
    console_login(console, ALICE, name="alice")
    page = console.get("/deployments/shop/web")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]


def test_a_pod_naming_another_deployments_replicaset_as_its_owner_implicates_neither(
    harness: Harness,
) -> None:
    """Whoever may update a pod may write any ReplicaSet's name into its ownerReferences (the
    API server asks only for a uid). An alert naming only that pod rolled the other Deployment
    back; the uid says the pod is no child of that ReplicaSet."""
    h = harness
    deploy(h, "victim")
    deploy(h, "mine")
    victim_rs = h.replicasets("shop", "victim")[-1]["metadata"]["name"]
    [pod, *_] = pods_of(h, h.replicasets("shop", "mine")[-1]["metadata"]["name"])
    core = kubernetes.client.CoreV1Api(h.api)
    body = core.read_namespaced_pod(pod, "shop")
    assert body.metadata is not None
    body.metadata.owner_references = [
        kubernetes.client.V1OwnerReference(
            api_version="apps/v1",
            kind="ReplicaSet",
            name=victim_rs,
            uid="0-forged",
            controller=True,
        )
    ]
    core.replace_namespaced_pod(pod, "shop", body)
    [decision] = h.post_alerts(h.alert(namespace="shop", pod=pod))
    assert (decision["outcome"], decision["reason"]) == ("skipped", "deployment_not_found")
    assert "'0-forged', which is not that ReplicaSet's" in decision["detail"]
    assert template_images(h.deployment("shop", "victim")) == ["victim:2"]
    assert template_images(h.deployment("shop", "mine")) == ["mine:2"]


@pytest.mark.parametrize("when", ["1969-12-31T23:59:59Z", "3000-01-01T00:00:01Z"])
def test_a_status_time_out_of_range_is_no_time_for_alerts_console_and_tracker(
    oncall: OnCall, when: str
) -> None:
    """A re-adopted current revision is timed by the Progressing condition's lastUpdateTime,
    which whoever may write deployments/status can set to any RFC 3339 year. It was a
    PayloadError: a 400 for the alert (dropped, no record), a 500 for the console page, and
    an exception that ended every tracker round, so no Deployment anywhere was stamped."""
    h = oncall.h
    _, new = deploy(h, "bad")
    annotate(h, "replicaset", new, {"deployment.kubernetes.io/revision-history": "1"})
    conditions = h.deployment("shop", "bad")["status"]["conditions"]
    for condition in conditions:
        if condition["type"] == "Progressing":
            condition["lastUpdateTime"] = when
    apps = kubernetes.client.AppsV1Api(h.api)
    apps.patch_namespaced_deployment_status("bad", "shop", {"status": {"conditions": conditions}})
    decide(h, "bad")
    console = oncall.app.test_client()
    console_login(console, ALICE, name="alice")
    page = console.get("/deployments/shop/bad")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    # The tracker's round goes on to the other Deployments.
    [good] = h.deploy("good", [("good:1", hours(2))], namespace="shop2")
    clock = FakeClock()
    tracker = tracker_for(h, clock)
    tracker.resync_once()
    clock.advance(601)  # min_healthy_seconds of health
    tracker.resync_once()
    assert "auto-rollback/healthy-since" in rs_annotations(h, good, "shop2")


@pytest.mark.parametrize("value", ["False", "FALSE", "no", "0", " false"], ids=ascii)
def test_an_opt_out_spelled_otherwise_still_opts_out(make_harness: Any, value: str) -> None:
    """With require_opt_in: false every Deployment is in scope unless it opts out; "False" was
    passed over as no opinion, and the Deployment its owner meant to exclude rolled back."""
    h: Harness = make_harness(require_opt_in=False)
    h.deploy(
        "web",
        [("web:1", hours(2)), ("web:2", minutes(3))],
        annotations={"auto-rollback/enabled": value},
    )
    decision = decide(h, "web")
    assert (decision["outcome"], decision["reason"]) == ("skipped", "not_opted_in")
    assert repr(value) in decision["detail"]
    assert template_images(h.deployment("shop", "web")) == ["web:2"]


def test_a_lease_renewed_in_the_far_future_expires_one_duration_after_it_is_seen(
    sandbox: SandboxHandle,
) -> None:
    """A renewTime of 2999 held every candidate off forever, and /readyz said nothing. A
    record ahead of the clock is timed from when the candidate saw it, as client-go times
    every record."""
    create_lease_namespace(sandbox)
    sandbox.controls.apply(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE},
            "spec": {
                "holderIdentity": "gone",
                "leaseDurationSeconds": 15,
                "renewTime": "2999-12-31T23:59:59.999999Z",
            },
        }
    )
    clock = FakeClock()
    cluster = Cluster(sandbox.api_client(token="t-me"), timeout_seconds=5)
    elector = LeaderElector(
        cluster=cluster,
        namespace=LEASE_NAMESPACE,
        name=LEASE_NAME,
        identity="me",
        lease_duration_seconds=15,
        clock=clock,
    )
    assert "ahead of this clock" in (
        lease_problem(cluster, namespace=LEASE_NAMESPACE, name=LEASE_NAME, clock=clock) or ""
    )
    assert not elector.try_acquire_or_renew()  # seen now: the holder may be renewing
    clock.advance(10)
    assert not elector.try_acquire_or_renew()
    clock.advance(10)
    assert elector.try_acquire_or_renew()  # unchanged for longer than its duration
    assert lease_spec(cluster)["holderIdentity"] == "me"


def test_a_stamp_dated_after_its_revision_stopped_being_current_is_no_evidence(
    harness: Harness,
) -> None:
    """web:1, web:2 (alerted), web:1 again (re-adopted), web:3. When web:2 stopped being
    current is unknown (its successor was re-adopted), but no later than the current revision
    began: a hand-written stamp of 2999 on web:2 outlasts its alert mark, and is no account of
    its time as current."""
    harness.deploy(
        "web",
        [("web:1", hours(5)), ("web:2", hours(4)), ("web:1", hours(3)), ("web:3", minutes(3))],
    )
    by_image = {
        r["spec"]["template"]["spec"]["containers"][0]["image"]: r["metadata"]["name"]
        for r in harness.replicasets("shop", "web")
    }
    harness.official().patch_namespaced_replica_set(
        by_image["web:2"],
        "shop",
        {
            "metadata": {
                "annotations": {
                    "auto-rollback/alerted-at": "2026-01-01T00:00:00Z",
                    "auto-rollback/healthy-since": "2999-01-01T00:00:00Z",
                }
            }
        },
    )
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=by_image["web:3"])
    )
    assert decision["to_replicaset"] != by_image["web:2"], decision["detail"]
    assert "not a stamp of its own time as current" in decision["detail"]
