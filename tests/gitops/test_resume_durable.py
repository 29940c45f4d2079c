"""A resume changes the cluster only with a durable record: its write-ahead intent is stored
before the owner or the Deployment is written, and the reconciler settles one whose record was
lost, from what the Deployment shows (the same mechanism as a rollback's)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from lab.receiver_harness import Harness, hours, minutes
from tests.gitops.support import FLUX_KUSTOMIZATION, deploy_owned
from tests.gitops.test_resume import pause_as_a_rollback_did, resume
from webhook.audit import IntentKind, IntentRow, IntentState, SqliteStore
from webhook.contract import ANNOTATION_LAST_RESUME
from webhook.gitops import ANNOTATION_GITOPS_PAUSED, FLUX_RECONCILE
from webhook.reconcile import Reconciler

BODY = {"namespace": "shop", "deployment": "web", "reason": "Git fixed"}
WRITES = {"create", "update", "patch", "delete"}
# The Deployment's PUT; the harness's Kubernetes client times out after 2 s.
PUT = r"^/apis/apps/v1/namespaces/shop/deployments/web$"


def paused(harness: Harness) -> None:
    deploy_owned(harness, "web", [("web:1", hours(2)), ("web:2", minutes(3))], FLUX_KUSTOMIZATION)
    pause_as_a_rollback_did(harness, "web")
    harness.sandbox.controls.clear_requests()


def still_paused(harness: Harness) -> bool:
    annotations = harness.deployment("shop", "web")["metadata"]["annotations"]
    return ANNOTATION_GITOPS_PAUSED in annotations and FLUX_RECONCILE in annotations


def writes(harness: Harness) -> list[dict[str, Any]]:
    return [r for r in harness.sandbox.controls.requests() if r["verb"] in WRITES]


def refuse_resume_records(harness: Harness) -> sqlite3.Connection:
    """The store takes the intent but refuses the resume's record (a disk that fills up, a
    primary lost between the two commits)."""
    harness.service.audit.prepare()
    db = sqlite3.connect(harness.tmp_path / "audit.sqlite", isolation_level=None)
    db.execute(
        "CREATE TRIGGER no_resume_record BEFORE INSERT ON decisions WHEN NEW.source = 'resume' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    return db


def stalled(harness: Harness) -> IntentRow:
    """A resume whose Deployment write gets no answer and never lands: its intent, open."""
    harness.sandbox.controls.fault(method="PUT", path=PUT, action="hang", delay=3)
    assert resume(harness, BODY).status_code == 503
    [intent] = harness.service.audit.open_intents()
    harness.sandbox.controls.clear_faults()
    return intent


def reconcile(harness: Harness) -> Any:
    service = harness.service
    return Reconciler(
        audit=service.audit, cluster=service.cluster, clock=service.clock, settle_after_seconds=0
    ).run_once()


def test_no_store_no_resume_and_nothing_written(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paused(harness)
    (tmp_path / "not-a-directory").write_text("")
    broken = SqliteStore(tmp_path / "not-a-directory" / "audit.sqlite")
    monkeypatch.setattr(harness.service, "audit", broken)

    answer = resume(harness, BODY)

    assert answer.status_code == 503, answer.get_json()
    assert "audit store unavailable" in answer.get_json()["error"]
    assert still_paused(harness) and writes(harness) == []


def test_a_record_lost_after_the_writes_is_a_503_saying_so_and_the_reconciler_stores_it(
    harness: Harness,
) -> None:
    paused(harness)
    db = refuse_resume_records(harness)

    answer = resume(harness, BODY)

    assert answer.status_code == 503, answer.get_json()
    error = answer.get_json()["error"]
    owner = "Flux Kustomization flux-system/apps"
    assert f"resumed {owner}, but its record could not be stored" in error
    assert not still_paused(harness)  # the writes landed
    [intent] = harness.service.audit.open_intents()
    assert intent.kind == IntentKind.RESUME and intent.state == IntentState.OPEN
    assert intent.id in error
    assert harness.service.audit.get(intent.id) is None
    db.execute("DROP TRIGGER no_resume_record")

    report = reconcile(harness)

    assert report.resumed == [intent.id] and report.errors == []
    row = harness.audit_row(intent.id)
    assert row["outcome"] == "resumed" and row["source"] == "resume" and row["actor"] == "alice"
    assert row["settled_by"] == "reconciler"
    assert "the Deployment names this resume" in row["detail"]
    last = harness.deployment("shop", "web")["metadata"]["annotations"][ANNOTATION_LAST_RESUME]
    assert last == intent.id
    assert row["labels"] == {"owner": "Flux Kustomization flux-system/apps"}
    assert harness.service.audit.open_intents() == []
    assert reconcile(harness).resumed == []  # settled once


def test_a_resume_that_never_reached_the_cluster_is_settled_as_failed(harness: Harness) -> None:
    paused(harness)
    db = refuse_resume_records(harness)
    # The Deployment write fails and so does its failed record: the intent stays open.
    harness.sandbox.controls.fault(method="PUT", path=PUT, status=500)

    answer = resume(harness, BODY)

    assert answer.status_code == 503, answer.get_json()
    assert still_paused(harness)
    [intent] = harness.service.audit.open_intents()
    db.execute("DROP TRIGGER no_resume_record")
    harness.sandbox.controls.clear_faults()

    report = reconcile(harness)

    assert report.never_landed == [intent.id] and report.resumed == []
    row = harness.audit_row(intent.id)
    assert row["outcome"] == "failed" and row["settled_by"] == "reconciler"
    assert "never finished (the Deployment still carries a pause" in row["detail"]
    assert still_paused(harness)  # the reconciler records; it never resumes by itself


def test_a_resume_intent_never_counts_against_the_circuit_breaker(harness: Harness) -> None:
    paused(harness)
    db = refuse_resume_records(harness)
    assert resume(harness, BODY).status_code == 503
    [intent] = harness.service.audit.open_intents()
    db.close()
    rs = harness.deploy("api", [("api:1", hours(3)), ("api:2", minutes(3))])
    # Default breaker: 5 rollbacks. Five alerts roll back five Deployments despite the open intent.
    names = ["api"] + [f"w{i}" for i in range(4)]
    alerts = [harness.alert(namespace="shop", deployment="api", replicaset=rs[1])]
    for name in names[1:]:
        their = harness.deploy(name, [(f"{name}:1", hours(3)), (f"{name}:2", minutes(3))])
        alerts.append(harness.alert(namespace="shop", deployment=name, replicaset=their[1]))
    decisions = [harness.post_alerts(a)[0] for a in alerts]
    assert [d["outcome"] for d in decisions] == ["rolled_back"] * 5, decisions
    assert intent.id in [i.id for i in harness.service.audit.open_intents()]


def test_a_write_answered_too_late_is_left_to_the_reconciler_which_finds_it_landed(
    harness: Harness,
) -> None:
    paused(harness)
    harness.sandbox.controls.fault(method="PUT", path=PUT, action="delay", delay=3)

    answer = resume(harness, BODY)

    assert answer.status_code == 503, answer.get_json()
    assert "the write may have landed" in answer.get_json()["error"]
    [intent] = harness.service.audit.open_intents()
    assert harness.service.audit.get(intent.id) is None  # not recorded failed: unknown
    deadline = time.monotonic() + 10
    while still_paused(harness) and time.monotonic() < deadline:
        time.sleep(0.1)  # the sandbox serves the delayed write after the client gave up
    assert not still_paused(harness)

    report = reconcile(harness)

    assert report.resumed == [intent.id]
    assert harness.audit_row(intent.id)["outcome"] == "resumed"


def test_one_resume_at_a_time_and_a_stalled_one_is_settled_failed_not_credited(
    harness: Harness,
) -> None:
    paused(harness)
    alices = stalled(harness)

    # Bob, meanwhile: refused while hers is open, with its id; nothing written.
    harness.sandbox.controls.clear_requests()
    refused = resume(harness, {**BODY, "reason": "me too"})
    assert refused.status_code == 409 and alices.id in refused.get_json()["error"]
    assert still_paused(harness) and writes(harness) == []

    report = reconcile(harness)

    assert report.never_landed == [alices.id]
    assert harness.audit_row(alices.id)["outcome"] == "failed"
    again = resume(harness, {**BODY, "reason": "Git fixed, again"})
    assert again.status_code == 200 and again.get_json()["decision"]["outcome"] == "resumed"
    assert not still_paused(harness)


def test_a_stalled_resume_is_not_credited_with_a_pause_removed_by_something_else(
    harness: Harness,
) -> None:
    paused(harness)
    intent = stalled(harness)
    # A human drops the pause annotations by hand (kubectl edit): not this resume's write.
    deployment = harness.deployment("shop", "web")
    for key in (ANNOTATION_GITOPS_PAUSED, FLUX_RECONCILE):
        deployment["metadata"]["annotations"].pop(key)
    harness.official().replace_namespaced_deployment("web", "shop", deployment)  # type: ignore[arg-type]

    report = reconcile(harness)

    assert report.never_landed == [intent.id] and report.resumed == []
    row = harness.audit_row(intent.id)
    assert row["outcome"] == "failed" and "the pause was removed by something else" in row["detail"]
