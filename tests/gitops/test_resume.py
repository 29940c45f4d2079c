"""`POST /api/v1/resume` (and `rollback-webhook resume`) hands a paused owner back, audited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from lab.receiver_harness import TOKEN, Harness, hours, minutes
from tests.gitops.support import FLUX_KUSTOMIZATION, ONCALL_TOKEN, FullApp, deploy_owned, events
from tests.oncall.support import live_server
from webhook.gitops import ANNOTATION_GITOPS_PAUSED, FLUX_RECONCILE, pause_record


def pause_as_a_rollback_did(
    harness: Harness, name: str, namespace: str = "shop", audit_id: str = "d-earlier"
) -> None:
    """The Deployment as a Flux pause leaves it (the annotations of the rollback's write)."""
    deployment = harness.deployment(namespace, name)
    record = {
        "owner": {
            "kind": "flux_kustomization",
            "name": "apps",
            "namespace": "flux-system",
            "evidence": "label kustomize.toolkit.fluxcd.io/name",
        },
        "mechanism": "flux_reconcile_annotation",
        "previous": None,
        "time": "2026-12-01T10:00:00Z",
        "audit_id": audit_id,
    }
    deployment["metadata"]["annotations"].update(
        {FLUX_RECONCILE: "disabled", ANNOTATION_GITOPS_PAUSED: json.dumps(record)}
    )
    harness.official().replace_namespaced_deployment(name, namespace, deployment)  # type: ignore[arg-type]


def resume(harness: Harness, body: object, token: str = ONCALL_TOKEN) -> Any:
    return FullApp(harness).resume(body, token)


def test_resume_that_meets_the_owners_own_write_reads_again_and_keeps_that_write(
    harness: Harness,
) -> None:
    deploy_owned(harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], FLUX_KUSTOMIZATION)
    pause_as_a_rollback_did(harness, "web")
    # The owner, handed back, reconciles at once: its write lands between resume's read of the
    # Deployment and resume's conditional write, which therefore meets a 409.
    harness.sandbox.controls.interleave(
        method="PUT",
        path=r"/apis/apps/v1/namespaces/shop/deployments/web$",
        resource="deployments",
        namespace="shop",
        name="web",
        merge_patch={"metadata": {"labels": {"reconciled-by": "flux"}}},
    )

    answer = resume(harness, {"namespace": "shop", "deployment": "web", "reason": "Git fixed"})

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["decision"]["outcome"] == "resumed"
    deployment = harness.deployment("shop", "web")
    annotations = deployment["metadata"]["annotations"]
    assert FLUX_RECONCILE not in annotations and ANNOTATION_GITOPS_PAUSED not in annotations
    assert deployment["metadata"]["labels"]["reconciled-by"] == "flux"  # not overwritten


def test_resume_removes_the_flux_pause_and_is_audited_with_the_actor(harness: Harness) -> None:
    deploy_owned(harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], FLUX_KUSTOMIZATION)
    pause_as_a_rollback_did(harness, "web")

    answer = resume(harness, {"namespace": "shop", "deployment": "web", "reason": "Git fixed"})

    assert answer.status_code == 200, answer.get_json()
    decision = answer.get_json()["decision"]
    assert decision["outcome"] == "resumed" and decision["source"] == "resume"
    assert decision["actor"] == "alice"
    assert "resumed Flux Kustomization flux-system/apps" in decision["detail"]
    assert "kustomize.toolkit.fluxcd.io/reconcile: disabled" in decision["detail"]
    annotations = harness.deployment("shop", "web")["metadata"]["annotations"]
    assert FLUX_RECONCILE not in annotations and ANNOTATION_GITOPS_PAUSED not in annotations
    assert annotations["auto-rollback/enabled"] == "true"  # nothing else of it changed
    row = harness.audit_row(decision["id"])
    assert row["outcome"] == "resumed" and row["labels"] == {
        "owner": "Flux Kustomization flux-system/apps"
    }
    [event] = events(harness, "AutoRollbackResumed")
    assert decision["id"] in event["message"] and "alice: Git fixed" in event["message"]


def test_resume_of_a_deployment_with_nothing_paused_is_409_and_records_nothing(
    harness: Harness,
) -> None:
    deploy_owned(harness, "web", [("web:1", hours(2))], FLUX_KUSTOMIZATION)
    answer = resume(harness, {"namespace": "shop", "deployment": "web", "reason": "why"})
    assert answer.status_code == 409
    assert "no pause by rollback-webhook" in answer.get_json()["error"]
    assert harness.service.audit.query(namespace="shop", limit=10) == []


def test_resume_needs_an_oncall_token_and_a_valid_body(harness: Harness) -> None:
    deploy_owned(harness, "web", [("web:1", hours(2))], FLUX_KUSTOMIZATION)
    body = {"namespace": "shop", "deployment": "web", "reason": "why"}
    assert resume(harness, body, token=TOKEN).status_code == 403
    assert resume(harness, {**body, "reason": ""}).status_code == 400
    assert resume(harness, {**body, "deployment": "../x"}).status_code == 400
    assert resume(harness, {**body, "namespace": "nowhere", "deployment": "x"}).status_code == 404


def test_resume_command_hands_back_then_says_nothing_is_paused(harness: Harness) -> None:
    deploy_owned(harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], FLUX_KUSTOMIZATION)
    pause_as_a_rollback_did(harness, "web")
    app = FullApp(harness)
    with live_server(app.client.application) as url:
        env = {
            **os.environ,
            "ROLLBACK_WEBHOOK_URL": url,
            "ROLLBACK_WEBHOOK_ONCALL_TOKEN": ONCALL_TOKEN,
        }

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "webhook", "resume", *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )

        done = cli("shop/web", "--reason", "Git fixed")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("RESUMED shop/web (d-")
        assert "resumed Flux Kustomization flux-system/apps" in done.stdout
        again = cli("shop/web", "--reason", "again")
        assert again.returncode == 3, again.stderr
        assert "no pause by rollback-webhook" in again.stderr
        assert cli("shop", "--reason", "x").returncode == 2


def test_resume_of_a_deployment_out_of_scope_is_refused_before_any_write(
    harness: Harness,
) -> None:
    # kube-system is in namespaces.deny by default. A pause record there is only an
    # annotation (anyone who may write the Deployment can write one): it must not make the
    # service write where no alert could.
    harness.deploy("coredns", [("dns:1", hours(2))], namespace="kube-system")
    pause_as_a_rollback_did(harness, "coredns", namespace="kube-system", audit_id="d-forged")
    harness.sandbox.controls.clear_requests()

    answer = resume(harness, {"namespace": "kube-system", "deployment": "coredns", "reason": "x"})

    assert answer.status_code == 403, answer.get_json()
    assert answer.get_json()["error"] == "namespace: namespace kube-system is in namespaces.deny"
    assert [r for r in harness.sandbox.controls.requests() if r["method"] != "GET"] == []
    annotations = harness.deployment("kube-system", "coredns")["metadata"]["annotations"]
    assert annotations[FLUX_RECONCILE] == "disabled"
    assert harness.service.audit.query(limit=5) == []


def test_resume_names_and_reason_are_checked_as_the_api_server_would(harness: Harness) -> None:
    cases = [
        ({"namespace": "a.b", "deployment": "web"}, "namespace: 'a.b' is not a DNS-1123 label"),
        ({"namespace": "shop", "deployment": "web..x"}, "deployment: 'web..x' is not a DNS-1123"),
        ({"namespace": "x" * 64, "deployment": "web"}, "is longer than 63 characters"),
        ({"namespace": "shop", "deployment": "web", "reason": "r" * 2001}, "reason: longer than"),
    ]
    for fields, message in cases:
        answer = resume(harness, {"reason": "Git fixed", **fields})
        assert answer.status_code == 400, (fields, answer.get_json())
        assert message in answer.get_json()["error"], (fields, answer.get_json())


def test_resume_leaves_a_flux_reconcile_annotation_a_person_set_before_the_pause(
    harness: Harness,
) -> None:
    """Someone had stopped Flux reconciling the Deployment themselves before any rollback: the
    rollback's pause records that earlier value, and resume puts it back instead of removing
    what this service did not set (Flux would otherwise apply the object again)."""
    _, v2 = deploy_owned(
        harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], FLUX_KUSTOMIZATION
    )
    harness.official().patch_namespaced_deployment(
        "web", "shop", {"metadata": {"annotations": {FLUX_RECONCILE: "disabled"}}}
    )
    [decision] = harness.post_alerts(
        harness.alert(namespace="shop", deployment="web", replicaset=v2, started_ago=minutes(0))
    )
    assert decision["outcome"] == "rolled_back", decision
    record = pause_record(harness.deployment("shop", "web")["metadata"]["annotations"])
    assert record is not None and record.previous == {FLUX_RECONCILE: "disabled"}

    answer = resume(harness, {"namespace": "shop", "deployment": "web", "reason": "Git fixed"})

    assert answer.status_code == 200, answer.get_json()
    annotations = harness.deployment("shop", "web")["metadata"]["annotations"]
    assert ANNOTATION_GITOPS_PAUSED not in annotations
    assert annotations[FLUX_RECONCILE] == "disabled"  # the person's own, as it was
