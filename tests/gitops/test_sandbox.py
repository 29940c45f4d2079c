"""On the sandbox (no CRDs there): GitOps-owned Deployments as the defaults handle them.

A Flux-Kustomization-owned Deployment is rolled back with `kustomize.toolkit.fluxcd.io/reconcile:
disabled` in the rollback's own write; an Argo CD-tracked one is refused (the default) with the
steps in an Event; both show their owner in `history`. Then the stay-put watch: the template put
back to the bad revision is reported once and never rolled back again.
"""

from __future__ import annotations

import html
import re
import time
from datetime import timedelta

import pytest

from lab.receiver_harness import SERVICE_TOKEN, Harness, hours, minutes
from tests.gitops.support import ARGOCD_TRACKED, FLUX_KUSTOMIZATION, deploy_owned, events, manifest
from tests.tracker.support import tracker_for
from webhook.gitops import FLUX_RECONCILE, pause_record
from webhook.history import build_history
from webhook.service import evidence_sources
from webhook.stayput import ANNOTATION_REVERTED_AT

WRITES = {"create", "update", "patch", "delete"}


def service_writes(harness: Harness, resource: str) -> list[dict]:
    return [
        r
        for r in harness.sandbox.server.record.entries()
        if r["token"] == SERVICE_TOKEN and r["verb"] in WRITES and r["resource"] == resource
    ]


ONE_MINUTE = minutes(1)


def alert_for(harness: Harness, replicaset: str, started_ago: timedelta = ONE_MINUTE) -> dict:
    [decision] = harness.post_alerts(
        harness.alert(
            namespace="shop", deployment="web", replicaset=replicaset, started_ago=started_ago
        )
    )
    return decision


def history_of(harness: Harness) -> dict:
    return build_history(
        cluster=harness.service.cluster,
        settings=harness.settings,
        namespace="shop",
        name="web",
        sources=evidence_sources(None),
    ).as_dict()


def test_flux_owned_deployment_is_rolled_back_with_reconcile_disabled_in_the_same_write(
    harness: Harness,
) -> None:
    _, v2 = deploy_owned(
        harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], FLUX_KUSTOMIZATION
    )

    decision = alert_for(harness, v2)

    assert decision["outcome"] == "rolled_back", decision
    deployment = harness.deployment("shop", "web")
    annotations = deployment["metadata"]["annotations"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"
    assert annotations[FLUX_RECONCILE] == "disabled"
    record = pause_record(annotations)
    assert record is not None and record.owner.describe() == "Flux Kustomization flux-system/apps"
    assert record.audit_id == decision["id"]
    # One write of the Deployment, the rollback's PUT: the annotation rode in it.
    assert [w["verb"] for w in service_writes(harness, "deployments")] == ["update"]
    assert (
        "paused Flux Kustomization flux-system/apps (kustomize.toolkit.fluxcd.io/reconcile: "
        "disabled on the Deployment); hand control back once Git is fixed: rollback-webhook "
        'resume shop/web --reason "<what was fixed>"' in decision["detail"]
    )
    [event] = events(harness, "AutoRollback")
    assert 'rollback-webhook resume shop/web --reason "<what was fixed>"' in event["message"]
    shown = history_of(harness)
    assert shown["gitops"]["owner"]["kind"] == "flux_kustomization"
    assert (
        shown["gitops"]["resume"] == 'rollback-webhook resume shop/web --reason "<what was fixed>"'
    )


def test_dry_run_says_what_it_would_pause(make_harness) -> None:
    harness = make_harness(dry_run=True)
    _, v2 = deploy_owned(
        harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], FLUX_KUSTOMIZATION
    )
    decision = alert_for(harness, v2)
    assert decision["outcome"] == "dry_run"
    assert "would pause Flux Kustomization flux-system/apps" in decision["detail"]
    assert service_writes(harness, "deployments") == []


def test_argocd_tracked_deployment_is_refused_by_default_with_the_steps(harness: Harness) -> None:
    _, v2 = deploy_owned(
        harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], ARGOCD_TRACKED
    )
    before = harness.deployment("shop", "web")

    decision = alert_for(harness, v2)

    assert (decision["outcome"], decision["reason"]) == ("skipped", "gitops_managed")
    assert "Argo CD Application argocd/shop-app manages this Deployment" in decision["detail"]
    after = harness.deployment("shop", "web")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert service_writes(harness, "deployments") == []
    [event] = events(harness, "AutoRollbackRefused")
    assert event["type"] == "Warning"
    assert "(1) argocd app set argocd/shop-app --sync-policy none" in event["message"]
    assert "(4) argocd app set argocd/shop-app --sync-policy automated" in event["message"]
    assert decision["id"] in event["message"]
    shown = history_of(harness)
    assert shown["gitops"]["owner"]["name"] == "shop-app"
    assert shown["gitops"]["handling"] == "refuse"
    assert harness.audit_row(decision["id"])["reason"] == "gitops_managed"


@pytest.mark.parametrize(("label", "outcome"), [("default", "skipped"), (None, "rolled_back")])
def test_the_instance_label_names_an_argo_cd_owner_unless_it_is_turned_off(
    make_harness, label: str | None, outcome: str
) -> None:
    # A plain Deployment whose chart or kustomization sets the common instance label.
    settings = {} if label == "default" else {"gitops": {"argocd_instance_label": label}}
    harness = make_harness(**settings)
    labelled = {"labels": {"app.kubernetes.io/instance": "web"}, "annotations": {}}
    _, v2 = deploy_owned(harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], labelled)

    decision = alert_for(harness, v2)

    assert decision["outcome"] == outcome, decision
    if outcome == "skipped":
        assert decision["reason"] == "gitops_managed"
        assert "Argo CD Application argocd/web" in decision["detail"]


def test_a_revert_to_the_bad_revision_is_reported_once_and_never_rolled_back_again(
    make_harness,
) -> None:
    harness = make_harness(cooldown="1s")
    _, v2 = deploy_owned(
        harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], FLUX_KUSTOMIZATION
    )
    rolled = alert_for(harness, v2)
    assert rolled["outcome"] == "rolled_back"
    tracker = tracker_for(harness, harness.service.clock, record=harness.service.record)
    tracker.resync_once()
    assert events(harness, "AutoRollbackReverted") == []  # rolled back, not reverted

    # Someone re-applies Git's (bad) template, as self-heal would once unpaused.
    harness.sandbox.controls.apply(manifest("web", "web:2", FLUX_KUSTOMIZATION))
    assert (
        harness.deployment("shop", "web")["spec"]["template"]["spec"]["containers"][0]["image"]
        == "web:2"
    )
    tracker.resync_once()
    tracker.resync_once()  # a second round reports nothing more

    [event] = events(harness, "AutoRollbackReverted")
    assert event["type"] == "Warning"
    assert f"rolled back from by audit {rolled['id']}" in event["message"]
    assert "reverted by Flux Kustomization flux-system/apps" in event["message"]
    [record] = harness.service.audit.query(namespace="shop", outcome="reverted", limit=5)
    assert record["source"] == "watch" and record["from_replicaset"] == v2
    marks = harness.replicasets("shop", "web")[1]["metadata"]["annotations"]
    assert ANNOTATION_REVERTED_AT in marks
    # The metric, as a worker serves it (the watch itself runs in the tracker's process).
    metrics = harness.client.get("/metrics").get_data(as_text=True)
    assert "rollback_webhook_reverts_recorded 1.0" in metrics

    time.sleep(2)  # past the 1s cooldown of the first rollback
    # A new alert for the reverted revision, started after it came back.
    again = alert_for(harness, v2, started_ago=timedelta(seconds=0.5))
    assert (again["outcome"], again["reason"]) == ("skipped", "cooldown")
    assert "has been reverted to since (AutoRollbackReverted)" in again["detail"]
    assert [w["verb"] for w in service_writes(harness, "deployments")] == ["update"]


@pytest.mark.parametrize(
    ("owner", "outcome", "shown"),
    [
        (
            FLUX_KUSTOMIZATION,
            "rolled_back",
            (
                "owner: Flux Kustomization flux-system/apps",
                "paused Flux Kustomization flux-system/apps",
                "rollback-webhook resume shop/web",
            ),
        ),
        (
            ARGOCD_TRACKED,
            "skipped",
            ("owner: Argo CD Application argocd/shop-app", "handling: refuse (gitops.argocd)"),
        ),
    ],
)
def test_the_console_deployment_page_shows_the_owner(
    harness: Harness, owner: dict, outcome: str, shown: tuple[str, ...]
) -> None:
    from tests.oncall.support import ALICE, OnCall

    _, v2 = deploy_owned(harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], owner)
    assert alert_for(harness, v2)["outcome"] == outcome
    oncall = OnCall(harness)
    login_page = oncall.client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login_page)
    assert csrf is not None
    response = oncall.client.post("/login", data={"csrf_token": csrf.group(1), "token": ALICE})
    assert response.status_code == 302

    page = html.unescape(oncall.client.get("/deployments/shop/web").get_data(as_text=True))

    for text in shown:
        assert text in page


def test_a_rollback_landing_mid_round_is_not_mistaken_for_a_revert(harness: Harness) -> None:
    """The round lists Deployments, then ReplicaSets: a rollback between the two pairs the old
    template with the new bad mark. The watch re-reads before reporting."""
    from webhook.revisions import current_revision, revisions_of

    _, v2 = deploy_owned(
        harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], FLUX_KUSTOMIZATION
    )
    listed = harness.deployment("shop", "web")  # the round's LIST, before the rollback
    assert alert_for(harness, v2)["outcome"] == "rolled_back"
    stale_current = current_revision(
        listed, revisions_of(listed, harness.replicasets("shop", "web"))
    )
    assert stale_current is not None and stale_current.bad_mark is not None  # looks reverted
    tracker = tracker_for(harness, harness.service.clock, record=harness.service.record)

    tracker._stay_put(listed, stale_current)

    assert events(harness, "AutoRollbackReverted") == []
    assert harness.service.audit.query(namespace="shop", outcome="reverted", limit=5) == []
