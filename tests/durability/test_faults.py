"""Faults between the cluster write and the record, and faults of the audit store itself.

For each: what Alertmanager gets, what /readyz says, and the record after (settled by the
reconciler where the worker could not). The sandbox injects the API faults (sandbox/faults.py);
the store faults are real: a held SQLite write lock, a full and a read-only filesystem (a small
tmpfs, root only), a file overwritten in the middle.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.receiver_harness import Harness, hours, minutes, template_images
from tests.binaries import require_binary
from tests.durability.mounts import mounted
from tests.sandbox.support import Kubectl
from webhook import contract, decision_log
from webhook.audit import IntentState
from webhook.reconcile import Reconciler


def reconcile(harness: Harness) -> Any:
    """One reconciler round that settles every open intent (no age threshold)."""
    service = harness.service
    return Reconciler(
        audit=service.audit, cluster=service.cluster, clock=service.clock, settle_after_seconds=0
    ).run_once()


def rollback_of(harness: Harness) -> dict[str, Any]:
    action: dict[str, Any] = json.loads(
        harness.deployment("shop", "web")["metadata"]["annotations"][
            contract.ANNOTATION_LAST_ACTION
        ]
    )
    return action


def bad_mark(harness: Harness, name: str) -> dict[str, Any] | None:
    rs = harness.read("GET", f"/apis/apps/v1/namespaces/shop/replicasets/{name}")
    raw = (rs["metadata"].get("annotations") or {}).get(contract.ANNOTATION_BAD_REVISION)
    return json.loads(raw) if raw else None


def rolled_back_rows(harness: Harness) -> list[dict[str, Any]]:
    return harness.service.audit.query(outcome="rolled_back", limit=100)


@pytest.fixture
def rs(harness: Harness) -> list[str]:
    return harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])


def alert_for(harness: Harness, rs: list[str]) -> dict[str, Any]:
    return harness.payload(harness.alert(namespace="shop", deployment="web", replicaset=rs[1]))


def test_a_write_landing_after_the_client_timeout_is_settled_as_rolled_back_once(
    harness: Harness, rs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # The PUT is served 3.5 s late; the client gives up after 2 s (kubernetes.timeout_seconds).
    harness.sandbox.controls.fault(
        method="PUT", path="/deployments/web$", action="delay", delay=3.5
    )
    payload = alert_for(harness, rs)
    first = harness.post(payload)
    assert first.status_code == 503  # Alertmanager retries
    [decision] = first.get_json()["decisions"]
    assert (decision["outcome"], decision["reason"]) == ("failed", "timeout")
    # Not recorded as failed: the write may still land, its intent is open.
    assert harness.service.audit.get(decision["id"]) is None
    [line] = logged(capsys)
    assert (line["id"], line["recorded"]) == (decision["id"], False)  # and its line says so
    [intent] = harness.service.audit.open_intents()
    assert (intent.id, intent.state) == (decision["id"], IntentState.OPEN)
    assert harness.client.get("/readyz").status_code == 200
    # The late write lands (3.5 s after it was sent, 1.5 s or so from now).
    deadline = time.monotonic() + 30
    while template_images(harness.deployment("shop", "web")) != ["web:1"]:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert template_images(harness.deployment("shop", "web")) == ["web:1"]
    assert rollback_of(harness)["audit_id"] == decision["id"]
    report = reconcile(harness)
    assert report.rolled_back == [decision["id"]] and report.marked == [decision["id"]]
    [row] = rolled_back_rows(harness)
    assert (row["id"], row["settled_by"]) == (decision["id"], "reconciler")
    assert row["from_replicaset"] == rs[1] and row["to_replicaset"] == rs[0]
    assert row["payload_id"] == first.get_json()["payload_id"]
    assert bad_mark(harness, rs[1])["audit_id"] == decision["id"]  # type: ignore[index]
    # The retry finds the rollback done; nothing is written twice.
    retry = harness.post(payload)
    assert retry.status_code == 200
    assert retry.get_json()["decisions"][0]["reason"] == "not_current_revision"
    assert reconcile(harness).rolled_back == []
    assert len(rolled_back_rows(harness)) == 1


def test_a_timeout_whose_write_never_lands_is_recorded_failed_and_the_retry_rolls_back(
    harness: Harness, rs: list[str]
) -> None:
    # Dropped without an answer: the sandbox never applies it.
    harness.sandbox.controls.fault(method="PUT", path="/deployments/web$", action="drop")
    payload = alert_for(harness, rs)
    first = harness.post(payload)
    assert first.status_code == 503
    failed_id = first.get_json()["decisions"][0]["id"]
    # Alertmanager's retry decides again and rolls back (the open intent counts, but 1 < 5).
    retry = harness.post(payload)
    assert retry.status_code == 200
    [done] = retry.get_json()["decisions"]
    assert done["outcome"] == "rolled_back"
    report = reconcile(harness)
    assert report.never_landed == [failed_id]
    row = harness.audit_row(failed_id)
    assert (row["outcome"], row["reason"], row["settled_by"]) == ("failed", "timeout", "reconciler")
    assert "never reached the cluster" in row["detail"]
    assert [r["id"] for r in rolled_back_rows(harness)] == [done["id"]]
    assert rollback_of(harness)["audit_id"] == done["id"]


def test_a_failed_bad_mark_is_answered_rolled_back_and_finished_by_the_reconciler(
    harness: Harness, rs: list[str]
) -> None:
    harness.sandbox.controls.fault(method="PATCH", path=f"/replicasets/{rs[1]}$", status=500)
    response = harness.post(alert_for(harness, rs))
    assert response.status_code == 200  # the rollback happened: retrying it would not help
    [decision] = response.get_json()["decisions"]
    assert decision["outcome"] == "rolled_back" and "WARNING: marking" in decision["detail"]
    assert bad_mark(harness, rs[1]) is None
    [pending] = harness.service.audit.open_intents()
    assert pending.state == IntentState.MARK_PENDING
    assert harness.client.get("/readyz").status_code == 200
    assert reconcile(harness).marked == [decision["id"]]
    assert bad_mark(harness, rs[1])["audit_id"] == decision["id"]  # type: ignore[index]
    assert harness.service.audit.open_intents() == []
    assert reconcile(harness).marked == []  # written once


def test_a_rollback_whose_record_is_refused_is_logged_counted_and_settled_once(
    harness: Harness, rs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    harness.service.audit.prepare()
    allow = refuse_decisions(harness)  # takes the intent, refuses the record closing it
    capsys.readouterr()
    payload = harness.payload(
        harness.alert(namespace="shop", deployment="web", replicaset=rs[1]),
        harness.alert(status="resolved", namespace="shop", deployment="other"),
    )
    response = harness.post(payload)
    assert response.status_code == 503  # Alertmanager sends it again
    assert template_images(harness.deployment("shop", "web")) == ["web:1"]  # the write landed
    # Sent again while the store still refuses: the skip decided anew each time, not logged.
    assert harness.post(payload).status_code == 503
    lines = logged(capsys)
    # Only the decision that changed the cluster, once: the resolved alert is decided again.
    [line] = [line for line in lines if line.get("event") == "decision"]
    assert line["recorded"] is False
    assert line["outcome"] == "rolled_back"
    assert (line["namespace"], line["deployment"]) == ("shop", "web")
    assert rollbacks_counted(harness) == 1.0  # RollbackWebhookRolledBack still hears of it
    [intent] = harness.service.audit.open_intents()
    assert intent.id == line["id"] == rollback_of(harness)["audit_id"]
    allow()
    assert reconcile(harness).rolled_back == [line["id"]]
    retry = harness.post(payload)
    assert retry.get_json()["decisions"][0]["reason"] == "not_current_revision"
    [row] = rolled_back_rows(harness)
    assert (row["id"], row["settled_by"]) == (line["id"], "reconciler")
    assert rollbacks_counted(harness) == 1.0  # not again when recorded


def test_a_dry_run_whose_record_is_refused_is_logged_counted_and_stored_once(
    make_harness: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    harness = make_harness(dry_run=True)
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    harness.service.audit.prepare()
    allow = refuse_decisions(harness)
    capsys.readouterr()
    payload = alert_for(harness, rs)
    assert harness.post(payload).status_code == 503
    assert harness.post(payload).status_code == 503  # the retry: a duplicate of the claim
    lines = logged(capsys)
    [line] = [line for line in lines if line.get("event") == "decision"]
    assert (line["outcome"], line["recorded"]) == ("dry_run", False)
    assert rollbacks_counted(harness) == 1.0  # the preview's alert still fires
    assert template_images(harness.deployment("shop", "web")) == ["web:2"]  # a dry run
    allow()
    assert reconcile(harness).dry_run == [line["id"]]
    assert harness.post(payload).status_code == 200
    assert rollbacks_counted(harness) == 1.0


def refuse_decisions(harness: Harness) -> Callable[[], None]:
    """Make the SQLite audit refuse every decision INSERT (intents, payloads and the rest are
    still taken) until the returned function is called."""
    db = sqlite3.connect(harness.tmp_path / "audit.sqlite", isolation_level=None)
    db.execute(
        "CREATE TRIGGER no_decisions BEFORE INSERT ON decisions "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )

    def allow() -> None:
        db.execute("DROP TRIGGER no_decisions")
        db.close()

    return allow


def logged(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The JSON lines written on stdout since the last read (the decision log flushed first)."""
    decision_log.flush()
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def rollbacks_counted(harness: Harness) -> float:
    metrics = harness.client.get("/metrics").get_data(as_text=True)
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "rollback_webhook_rollbacks_total"
    )


def test_a_held_write_lock_is_503_ready_false_and_nothing_is_written_to_the_cluster(
    harness: Harness, rs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("webhook.audit.sqlite.BUSY_TIMEOUT_SECONDS", 1.0)
    harness.service.audit.prepare()
    # Pruned first: the hourly prune would otherwise meet the lock and answer the 503 before
    # the alert reached the gate, and "nothing written to the cluster" would hold trivially.
    harness.service.prune_if_due()
    other = sqlite3.connect(harness.tmp_path / "audit.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        payload = alert_for(harness, rs)
        response = harness.post(payload)
        assert response.status_code == 503
        assert "audit store unavailable" in response.get_json()["error"]
        ready = harness.client.get("/readyz")
        assert ready.status_code == 503 and "locked" in ready.get_json()["error"]
        assert template_images(harness.deployment("shop", "web")) == ["web:2"]
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert harness.service.audit.payloads() == []  # not even the payload: retried whole
    retry = harness.post(payload)
    assert retry.get_json()["decisions"][0]["outcome"] == "rolled_back"
    assert harness.client.get("/readyz").status_code == 200


def test_a_prune_that_fails_refuses_no_payload_and_is_tried_again_a_minute_later(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A prune that cannot finish while inserts still can (on PostgreSQL: a DELETE of a long
    # backlog cut off by the statement timeout; here: the database refuses the DELETE).
    audit = harness.service.audit
    audit.prepare()
    old = harness.service.clock() - timedelta(days=audit_days(harness) + 1)
    audit.store_payload("{}", received_at=old, source="alertmanager")
    db = sqlite3.connect(harness.tmp_path / "audit.sqlite", isolation_level=None)
    db.execute(
        "CREATE TRIGGER no_prune BEFORE DELETE ON payloads BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    resolved = harness.payload(harness.alert(status="resolved", namespace="shop"))
    assert harness.post(resolved).status_code == 200  # decided and stored all the same
    db.execute("DROP TRIGGER no_prune")
    db.close()
    assert harness.post(resolved).status_code == 200
    assert len(audit.payloads()) == 3  # not tried again on every payload
    real = harness.service.clock
    monkeypatch.setattr(harness.service, "clock", lambda: real() + timedelta(seconds=61))
    assert harness.post(resolved).status_code == 200
    # A minute later, not an hour: the payload past retention is gone.
    assert all(p.received_at > old.isoformat() for p in audit.payloads())
    assert len(audit.payloads()) == 3


def audit_days(harness: Harness) -> int:
    return harness.service.settings.audit.retention_days


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs for the audit (root only: skip elsewhere, fail under CI=true)."""
    mount = tmp_path / "volume"
    mount.mkdir()
    with mounted(mount, "-t", "tmpfs", "-o", "size=2m", "tmpfs", what="mount a tmpfs"):
        yield mount


def test_a_full_audit_volume_is_503_and_not_ready_until_space_returns(
    make_harness: Any, volume: Path
) -> None:
    harness: Harness = make_harness(audit={"path": str(volume / "audit.sqlite")})
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    assert harness.client.get("/readyz").status_code == 200
    filler = volume / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass  # ENOSPC: the volume is full
    payload = alert_for(harness, rs)
    response = harness.post(payload)
    assert response.status_code == 503
    ready = harness.client.get("/readyz")
    assert ready.status_code == 503 and "full" in ready.get_json()["error"]
    assert template_images(harness.deployment("shop", "web")) == ["web:2"]
    filler.unlink()
    assert harness.client.get("/readyz").status_code == 200
    retry = harness.post(payload)
    assert retry.status_code == 200
    assert retry.get_json()["decisions"][0]["outcome"] == "rolled_back"
    assert len(harness.service.audit.payloads()) == 1  # the full disk stored nothing


def test_a_read_only_audit_volume_is_503_and_not_ready(
    make_harness: Any, volume: Path, tmp_path: Path
) -> None:
    # The audit is reached through a bind mount of the volume, later made read-only (as a
    # volume mounted readOnly, or a filesystem the kernel remounted read-only after errors).
    view = tmp_path / "view"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(volume), str(view)], check=True)
    try:
        read_only_volume(make_harness, view)
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def read_only_volume(make_harness: Any, view: Path) -> None:
    harness: Harness = make_harness(audit={"path": str(view / "audit.sqlite")})
    rs = harness.deploy("web", [("web:1", hours(2)), ("web:2", minutes(3))])
    assert harness.client.get("/readyz").status_code == 200
    harness.service.audit.close()  # a busy mount cannot be remounted: as after a restart
    subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
    try:
        response = harness.post(alert_for(harness, rs))
        assert response.status_code == 503
        ready = harness.client.get("/readyz")
        assert ready.status_code == 503 and "audit" in ready.get_json()["error"]
        assert template_images(harness.deployment("shop", "web")) == ["web:2"]
    finally:
        subprocess.run(["mount", "-o", "remount,bind,rw", str(view)], check=True)
    assert harness.client.get("/readyz").status_code == 200
    harness.service.audit.close()


def test_a_corrupted_audit_file_is_not_ready_and_refuses_deliveries(
    harness: Harness, rs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(40):  # enough rows for several pages
        harness.post(harness.payload(harness.alert(namespace="shop", deployment=f"x{i}")))
    path = harness.tmp_path / "audit.sqlite"
    harness.service.audit.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size = path.stat().st_size
    with path.open("r+b") as out:  # overwrite pages in the middle of the file
        out.seek(size // 2)
        out.write(os.urandom(8192))
    monkeypatch.setattr("webhook.audit.sqlite.INTEGRITY_MAX_AGE_SECONDS", 0.0)
    ready = harness.client.get("/readyz")
    assert ready.status_code == 503 and "integrity" in ready.get_json()["error"]
    response = harness.post(alert_for(harness, rs))
    assert response.status_code == 503
    assert template_images(harness.deployment("shop", "web")) == ["web:2"]


def test_a_rollback_this_audit_has_no_record_of_is_reported_not_written(
    harness: Harness, rs: list[str], tmp_path: Path
) -> None:
    from webhook.audit import SqliteStore

    response = harness.post(alert_for(harness, rs))
    [decision] = response.get_json()["decisions"]
    assert decision["outcome"] == "rolled_back"
    service = harness.service
    # Our own audit knows it: nothing to report.
    ours = Reconciler(
        audit=service.audit,
        cluster=service.cluster,
        clock=service.clock,
        settle_after_seconds=0,
        namespaces=service.settings.namespaces,
    ).run_once()
    assert ours.unrecorded == []
    # Another replica's own SQLite file does not: it says so, and writes nothing.
    other = SqliteStore(tmp_path / "other.sqlite")
    report = Reconciler(
        audit=other,
        cluster=service.cluster,
        clock=service.clock,
        settle_after_seconds=0,
        namespaces=service.settings.namespaces,
    ).run_once()
    assert report.unrecorded == [decision["id"]]
    assert other.query() == [] and other.open_intents() == []


@pytest.mark.parametrize("edit", ["kubectl-rollout-undo", "last-action-removed"])
def test_a_landed_rollback_whose_last_action_was_written_over_is_recorded_and_marked(
    harness: Harness, rs: list[str], edit: str
) -> None:
    """The worker's write landed, then it died before the bad mark and the record (here: the
    mark's PATCH fails and the store refuses the record). Before the reconciler ran, a person
    ran `kubectl rollout undo`, which gives the Deployment the ReplicaSet's annotations (so no
    last-action), or removed the annotation. The cluster still shows the write: the ReplicaSet
    rolled back to was re-adopted under a new number. Recorded rolled_back and marked, so the
    bad revision, current again, is not rolled back a second time (a flap)."""
    harness.service.audit.prepare()
    harness.sandbox.controls.fault(method="PATCH", path=f"/replicasets/{rs[1]}$", status=500)
    allow = refuse_decisions(harness)
    assert harness.post(alert_for(harness, rs)).status_code == 503
    assert template_images(harness.deployment("shop", "web")) == ["web:1"]  # the write landed
    [intent] = harness.service.audit.open_intents()
    harness.sandbox.controls.clear_faults()
    assert bad_mark(harness, rs[1]) is None
    if edit == "kubectl-rollout-undo":
        undone = Kubectl(require_binary("kubectl"), harness.sandbox).run(
            "-n", "shop", "rollout", "undo", "deployment/web", check=False
        )
        assert undone.returncode == 0, undone.stderr
        assert template_images(harness.deployment("shop", "web")) == ["web:2"]
    else:
        harness.official().patch_namespaced_deployment(
            "web", "shop", {"metadata": {"annotations": {contract.ANNOTATION_LAST_ACTION: None}}}
        )
    assert contract.ANNOTATION_LAST_ACTION not in (
        harness.deployment("shop", "web")["metadata"].get("annotations") or {}
    )
    allow()
    report = reconcile(harness)
    assert report.rolled_back == [intent.id] and report.never_landed == []
    row = harness.audit_row(intent.id)
    assert (row["outcome"], row["settled_by"]) == ("rolled_back", "reconciler")
    assert "was re-adopted as revision 3 after revision 2" in row["detail"]
    assert bad_mark(harness, rs[1])["audit_id"] == intent.id  # type: ignore[index]
    if edit == "kubectl-rollout-undo":  # web:2 is current again: its alert is not a new one
        [again] = harness.post_alerts(
            harness.alert(
                namespace="shop", deployment="web", replicaset=rs[1], started_ago=minutes(0)
            )
        )
        assert (again["outcome"], again["reason"]) == ("skipped", "cooldown"), again


def test_a_write_that_may_have_landed_marks_the_revision_bad_without_claiming_it(
    harness: Harness, rs: list[str]
) -> None:
    """Neither the last-action nor a re-adopted target shows the write, but the spec changed
    since its read (someone else's write, or ours with its traces gone): not provably
    unlanded. Recorded failed, saying so, and the revision it rolled back from marked bad."""
    harness.service.audit.prepare()
    harness.sandbox.controls.fault(method="PUT", path="/deployments/web$", action="drop")
    payload = alert_for(harness, rs)
    assert harness.post(payload).status_code == 503  # the write never landed
    [intent] = harness.service.audit.open_intents()
    harness.sandbox.controls.clear_faults()
    harness.official().patch_namespaced_deployment(  # a new revision by someone else
        "web",
        "shop",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:3"}]}}}},
    )
    report = reconcile(harness)
    assert report.never_landed == [intent.id] and report.marked == [intent.id]
    row = harness.audit_row(intent.id)
    assert (row["outcome"], row["reason"]) == ("failed", "timeout")
    assert "may have reached the cluster" in row["detail"]
    assert bad_mark(harness, rs[1])["audit_id"] == intent.id  # type: ignore[index]
