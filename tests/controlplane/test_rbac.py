"""Real RBAC: the service authenticates as each overlay's ServiceAccount, with the overlay's
rendered roles bound, against the apiserver's own authorizer.

Under enforce and namespaced every decision path works (rollback through pod and ReplicaSet
resolution, namespace-label opt-in, the bad mark, Events, no_healthy_revision with alerted-at,
the tracker's Lease and healthy-since stamp); under dry-run the service never writes and the
apiserver refuses a Deployment update; a revoked verb gives failed/forbidden with the
apiserver's message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.controlplane import ControlPlane
from tests.controlplane.support import (
    SERVICE_ACCOUNT,
    BoundOverlay,
    alert_now,
    apply,
    deployment_manifest,
    get_json,
    kubectl,
    pods_of,
    receiver,
    replicasets,
    rollout_status,
    set_template,
    wait_until,
)
from webhook.contract import ANNOTATION_MIN_HEALTHY_SECONDS as MIN_HEALTHY
from webhook.leader import LeaderElector
from webhook.tracker import HealthTracker

pytestmark = pytest.mark.controlplane


def overlay_rbac(plane: ControlPlane, name: str) -> BoundOverlay:
    """One overlay's RBAC, in effect once the service may read ReplicaSets in team-a."""
    return BoundOverlay(plane, name, probe=("get", "replicasets", "team-a"), namespaces=("team-a",))


@pytest.fixture
def team_a(controlplane: ControlPlane) -> Iterator[str]:
    """The namespace the shipped namespaced overlay grants (its Deployments removed after)."""
    kubectl(controlplane, "create", "namespace", "team-a", check=False)
    yield "team-a"
    kubectl(controlplane, "-n", "team-a", "delete", "deployment", "--all", check=False)


def bad_second_revision(
    plane: ControlPlane, namespace: str, *, annotated: bool = True
) -> list[dict[str, Any]]:
    """web:1 healthy > min_healthy_seconds, then web:2 crash-looping; returns the ReplicaSets.
    Not `annotated`: the Deployment has no opt-in of its own (its namespace's label decides)."""
    manifest = deployment_manifest("web", namespace, "web:1", replicas=1)
    if not annotated:
        manifest["metadata"]["annotations"] = {}
    apply(plane, manifest)
    rollout_status(plane, namespace, "web")
    time.sleep(4)
    set_template(plane, namespace, "web", "web:2", "crashloop")

    def with_pod() -> list[dict[str, Any]] | None:
        sets = replicasets(plane, namespace, "web")
        if len(sets) == 2 and pods_of(plane, namespace, sets[1]["metadata"]["name"]):
            return sets
        return None

    return wait_until("revision 2 with a pod", with_pod)


def every_path_works(
    plane: ControlPlane, overlay: BoundOverlay, namespace: str, tmp_path: Path
) -> None:
    """Rollback, opt-in by namespace label, Events, alerted-at, the tracker: none forbidden."""
    kubectl(plane, "label", "namespace", namespace, "auto-rollback/enabled=true", "--overwrite")
    sets = bad_second_revision(plane, namespace, annotated=False)
    pod = pods_of(plane, namespace, sets[1]["metadata"]["name"])[0]["metadata"]["name"]
    harness = receiver(plane, tmp_path, token=overlay.token, **overlay.config(dry_run=False))
    # An alert naming only the pod: GET pod, GET ReplicaSet, GET Deployment, GET Namespace
    # (opt-in by label), LIST ReplicaSets, the circuit ledger's Lease (GET, then POST or PUT),
    # PUT Deployment, PATCH mark, POST Event.
    decision = alert_now(harness, namespace=namespace, pod=pod)
    assert decision["outcome"] == "rolled_back", decision
    ledger = harness.settings.circuit_ledger
    assert ledger.mode == "on"
    booked = get_json(plane, "-n", ledger.namespace, "lease", ledger.name)
    assert decision["id"] in booked["metadata"]["annotations"]["auto-rollback/rollbacks"]
    assert decision["to_revision"] == 1
    marked = replicasets(plane, namespace, "web")
    bad = {r["metadata"]["name"]: r for r in marked}[sets[1]["metadata"]["name"]]
    assert "auto-rollback/bad-revision" in bad["metadata"]["annotations"]
    assert "AutoRollback" in harness.event_reasons(namespace)

    # no_healthy_revision: an Event for humans and alerted-at on the current ReplicaSet.
    # Revision 1 never proves itself by age, however slow the machine is between the two
    # revisions; and it exists before revision 2 is made (a controller seeing both templates at
    # once would make revision 2 only).
    fresh_1 = deployment_manifest(
        "fresh", namespace, "fresh:1", replicas=1, annotations={MIN_HEALTHY: "1h"}
    )
    apply(plane, fresh_1)
    wait_until("fresh revision 1", lambda: replicasets(plane, namespace, "fresh"))
    set_template(plane, namespace, "fresh", "fresh:2", None)
    fresh = wait_until("fresh revision 2", lambda: len(replicasets(plane, namespace, "fresh")) == 2)
    assert fresh
    current = replicasets(plane, namespace, "fresh")[1]["metadata"]["name"]
    skip = alert_now(harness, namespace=namespace, deployment="fresh", replicaset=current)
    assert (skip["outcome"], skip["reason"]) == ("skipped", "no_healthy_revision"), skip
    assert "AutoRollbackNoHealthyRevision" in harness.event_reasons(namespace)
    stamped = get_json(plane, "-n", namespace, "rs", current)
    assert "auto-rollback/alerted-at" in stamped["metadata"]["annotations"]
    run_tracker(plane, harness, namespace)


def run_tracker(plane: ControlPlane, harness: Any, namespace: str) -> None:
    """The tracker as this identity: take the Lease, then stamp web's healthy revision."""
    service = harness.service
    settings = service.settings
    elector = LeaderElector(
        cluster=service.cluster,
        namespace=settings.tracker.lease_namespace,
        name=settings.tracker.lease_name,
        identity="test-" + namespace,
        lease_duration_seconds=15,
        clock=service.clock,
    )
    assert elector.try_acquire_or_renew()
    assert elector.try_acquire_or_renew()  # a renewal is a conditional update
    tracker = HealthTracker(
        service.cluster, settings, service.audit, service.clock, is_leader=elector.is_leader
    )
    rollout_status(plane, namespace, "web")
    first = tracker.resync_once()
    assert not first.errors, first.errors
    time.sleep(settings.min_healthy_seconds + 1)
    second = tracker.resync_once()
    assert not second.errors, second.errors
    current = replicasets(plane, namespace, "web")[-1]
    assert "auto-rollback/healthy-since" in current["metadata"]["annotations"], second
    kubectl(
        plane,
        "-n",
        settings.tracker.lease_namespace,
        "delete",
        "lease",
        settings.tracker.lease_name,
    )


def test_enforce_every_decision_path_works_as_the_service_account(
    controlplane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    with overlay_rbac(controlplane, "enforce") as overlay:
        every_path_works(controlplane, overlay, namespace, tmp_path)


def test_namespaced_every_decision_path_works_in_its_namespace(
    controlplane: ControlPlane, team_a: str, tmp_path: Path, namespace: str
) -> None:
    with overlay_rbac(controlplane, "namespaced") as overlay:
        assert not overlay.can("get", "deployments", namespace)
        every_path_works(controlplane, overlay, team_a, tmp_path)
        (tmp_path / "other").mkdir()
        harness = receiver(
            controlplane, tmp_path / "other", token=overlay.token, **overlay.config(dry_run=False)
        )
        [denied] = harness.post_alerts(harness.alert(namespace=namespace, deployment="web"))
        assert (denied["outcome"], denied["reason"]) == ("skipped", "namespace_denied")


def test_dry_run_never_writes_and_the_apiserver_refuses_a_deployment_update(
    controlplane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    with overlay_rbac(controlplane, "dry-run") as overlay:
        sets = bad_second_revision(controlplane, namespace)
        harness = receiver(controlplane, tmp_path, token=overlay.token, **overlay.config())
        assert harness.settings.dry_run
        decision = alert_now(
            harness, namespace=namespace, deployment="web", replicaset=sets[1]["metadata"]["name"]
        )
        assert decision["outcome"] == "dry_run", decision
        assert "AutoRollbackDryRun" in harness.event_reasons(namespace)
        # What the overlay's RBAC says on its own: the update is refused by the apiserver.
        deployment = get_json(controlplane, "-n", namespace, "deployment", "web")
        sa = controlplane.kubeconfig_for(overlay.token, "dry-run-sa")
        refused = kubectl(
            controlplane,
            "replace",
            "-f",
            "-",
            kubeconfig=sa,
            stdin=json.dumps(deployment),
            check=False,
        )
        assert refused.returncode != 0
        assert (
            f'User "{SERVICE_ACCOUNT}" cannot update resource "deployments" in API group "apps"'
            in refused.stderr
        ), refused.stderr


def test_revoked_verb_gives_failed_forbidden_with_the_apiservers_message(
    controlplane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    with overlay_rbac(controlplane, "enforce") as overlay:
        sets = bad_second_revision(controlplane, namespace)
        patch = [{"op": "replace", "path": "/rules/0/verbs", "value": ["get", "list"]}]
        kubectl(
            controlplane,
            "patch",
            "clusterrole",
            "rollback-webhook",
            "--type=json",
            "-p",
            json.dumps(patch),
        )
        wait_until(
            "update to be revoked", lambda: not overlay.can("update", "deployments", namespace)
        )
        harness = receiver(controlplane, tmp_path, token=overlay.token, **overlay.config())
        decision = alert_now(
            harness, namespace=namespace, deployment="web", replicaset=sets[1]["metadata"]["name"]
        )
        assert (decision["outcome"], decision["reason"]) == ("failed", "forbidden"), decision
        assert (
            f'deployments.apps "web" is forbidden: User "{SERVICE_ACCOUNT}" cannot update '
            f'resource "deployments" in API group "apps" in the namespace "{namespace}"'
        ) in decision["detail"], decision["detail"]
        # The Deployment is untouched.
        after = get_json(controlplane, "-n", namespace, "deployment", "web")
        assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
